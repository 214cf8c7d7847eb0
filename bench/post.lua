-- POST bodies for the bench: wrk ... -s bench/post.lua URL -- small|stream|big
-- small: a short Messages request; stream: the same with "stream": true; big: ~200 KB of text.
function init(args)
  local kind = args[1] or "small"
  local text = "Say hello."
  local stream = ""
  if kind == "big" then
    text = string.rep("lorem ipsum ", math.floor(200 * 1024 / 12))
  elseif kind == "stream" then
    stream = ',"stream":true'
  end
  wrk.method = "POST"
  wrk.body = '{"model":"claude-sonnet-4-5","max_tokens":1024' .. stream ..
    ',"messages":[{"role":"user","content":"' .. text .. '"}]}'
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["x-api-key"] = "bench-client-key"
  wrk.headers["anthropic-version"] = "2023-06-01"
end
