// qcc dashboard. Plain JavaScript, no build step, no library. Every value from the proxy is
// put on the page with textContent or an SVG attribute: nothing it sends is parsed as HTML.
"use strict";

(function () {
  const POLL_MS = 1000;
  const KEY_STORE = "qcc.access_key";
  const SVG = "http://www.w3.org/2000/svg";
  const STATES = ["healthy", "ejected", "probing", "rate_limited", "auth_failed", "exhausted", "disabled"];
  const COUNTDOWN = new Set(["ejected", "rate_limited", "exhausted", "probing", "auth_failed"]);
  const PALETTE = 8; // colours .s0 … .s7 in style.css

  let timer = null;
  let inFlight = false;
  let received = 0; // Date.now() when the last document arrived
  let last = null; // the last document
  const rows = new Map(); // account name -> row elements
  const colours = new Map(); // account -> palette index, stable for the page's life
  const errorColours = new Map(); // error kind -> palette index, counted from the other end

  const $ = (id) => document.getElementById(id);

  function key() {
    return sessionStorage.getItem(KEY_STORE);
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const k = key();
    if (k) h["x-api-key"] = k;
    return h;
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setText(node, text) {
    const value = text === undefined || text === null ? "–" : String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  // ---- number formats ----------------------------------------------------------------------

  function int(n) {
    return typeof n === "number" ? Math.round(n).toLocaleString("en-US") : "–";
  }

  function compact(n) {
    if (typeof n !== "number") return "–";
    if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return String(Math.round(n));
  }

  function ms(n) {
    return typeof n === "number" ? (n >= 100 ? Math.round(n).toString() : n.toFixed(1)) : "–";
  }

  function pct(x) {
    return typeof x === "number" ? Math.round(x * 100) + "%" : "–";
  }

  function duration(s) {
    if (typeof s !== "number" || !isFinite(s)) return "–";
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  function serverNow() {
    return last ? last.now + (Date.now() - received) / 1000 : Date.now() / 1000;
  }

  function clock(epoch) {
    const d = new Date(epoch * 1000);
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map((v) => String(v).padStart(2, "0")).join(":");
  }

  function colour(name) {
    if (!colours.has(name)) colours.set(name, colours.size % PALETTE);
    return "s" + colours.get(name);
  }

  function errorColour(kind) {
    if (!errorColours.has(kind)) errorColours.set(kind, PALETTE - 1 - (errorColours.size % PALETTE));
    return "s" + errorColours.get(kind);
  }

  // ---- optional fields (added by newer proxies; shown when present) --------------------------

  function headroom(acc) {
    const h = acc.headroom;
    if (typeof h === "number") return pct(h);
    return "–";
  }

  function money(value) {
    return "$" + value.toFixed(2);
  }

  function spend(acc) {
    const today = acc.spend_today_usd;
    if (typeof today !== "number") return "–";
    const budget = acc.budget_daily_usd;
    return typeof budget === "number" ? money(today) + " / " + money(budget) : money(today);
  }

  function spendDetail(acc) {
    const parts = [];
    if (typeof acc.spend_today_usd === "number") parts.push("today " + spend(acc));
    if (typeof acc.spend_month_usd === "number") {
      const budget = acc.budget_monthly_usd;
      parts.push("this month " + money(acc.spend_month_usd) + (typeof budget === "number" ? " / " + money(budget) : ""));
    }
    return parts.join(", ");
  }

  // ---- fetching ----------------------------------------------------------------------------

  function connection(text, bad) {
    const node = $("conn");
    setText(node, text);
    node.classList.toggle("bad", !!bad);
  }

  function askKey(message) {
    $("main").hidden = true;
    $("keybox").hidden = false;
    setText($("keyerror"), message || "");
    if (!message) $("keyerror").textContent = "";
    $("key").focus();
  }

  async function poll() {
    if (inFlight) return;
    inFlight = true;
    try {
      const response = await fetch("/ui/state", { headers: headers(), cache: "no-store", credentials: "omit" });
      if (response.status === 401) {
        const had = key();
        sessionStorage.removeItem(KEY_STORE);
        stop();
        askKey(had ? "That key was refused. Try again." : "");
        connection("access key needed", true);
        return;
      }
      if (!response.ok) {
        connection("proxy answered HTTP " + response.status, true);
        return;
      }
      const doc = await response.json();
      last = doc;
      received = Date.now();
      $("keybox").hidden = true;
      $("main").hidden = false;
      render(doc);
      connection("live · " + clock(doc.now), false);
    } catch (err) {
      connection("proxy unreachable", true);
    } finally {
      inFlight = false;
    }
  }

  function start() {
    if (timer === null) {
      poll();
      timer = setInterval(poll, POLL_MS);
    }
  }

  function stop() {
    if (timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  }

  async function act(name, action, button) {
    button.disabled = true;
    try {
      const response = await fetch("/ui/accounts/" + encodeURIComponent(name) + "/" + action, {
        method: "POST",
        headers: headers({ "x-qcc-action": "1" }),
        cache: "no-store",
        credentials: "omit",
      });
      const answer = await response.json().catch(() => ({}));
      if (response.status === 401) {
        sessionStorage.removeItem(KEY_STORE);
        stop();
        askKey("That key was refused. Try again.");
        return;
      }
      if (!response.ok) connection(answer.error || "action refused: HTTP " + response.status, true);
      setTimeout(poll, 300);
    } catch (err) {
      connection("proxy unreachable", true);
    } finally {
      setTimeout(() => { button.disabled = false; }, 800);
    }
  }

  // ---- rendering ---------------------------------------------------------------------------

  function render(doc) {
    setText($("cluster-name"), "cluster " + doc.cluster);
    document.title = "qcc · " + doc.cluster + " · " + doc.available_accounts + "/" + doc.total_accounts;
    setText($("k-strategy"), doc.strategy + (doc.sticky ? " · sticky" : ""));
    setText($("k-available"), doc.available_accounts + " / " + doc.total_accounts);
    $("k-available").classList.toggle("warn", doc.available_accounts < doc.total_accounts);
    setText($("k-rate"), typeof doc.requests_per_s === "number" ? doc.requests_per_s.toFixed(1) : "–");
    setText($("k-failovers"), int(doc.failovers_last_minute));
    setText($("k-panic"), (doc.panic ? "ACTIVE" : "no") + " · " + int(doc.panics) + " so far");
    $("k-panic").classList.toggle("alert", !!doc.panic);
    setText($("k-requests"), int(doc.requests));
    setText($("k-uptime"), duration(doc.uptime_s));
    const banner = $("reload-error");
    banner.hidden = !doc.reload_error;
    setText(banner, doc.reload_error ? "config change refused, still serving the previous config: " + doc.reload_error : "");
    renderAccounts(doc);
    renderCharts(doc);
    renderRecent(doc.recent || []);
  }

  function accountRow(name) {
    const tr = el("tr");
    const cells = {};
    const add = (key, cls) => {
      const td = el("td", cls);
      tr.appendChild(td);
      cells[key] = td;
      return td;
    };
    const nameCell = add("name", "name");
    const swatch = el("span", "swatch " + colour(name));
    nameCell.appendChild(swatch);
    cells.label = nameCell.appendChild(el("span", "acct", name));
    const stateCell = add("state", "state");
    cells.badge = stateCell.appendChild(el("span", "badge"));
    cells.reason = stateCell.appendChild(el("div", "reason"));
    cells.rule = stateCell.appendChild(el("div", "rule"));
    cells.error = stateCell.appendChild(el("div", "lasterror"));
    cells.until = add("until", "n until");
    for (const k of ["requests", "failures", "in_flight", "p50", "p95", "tokens", "cache", "share"]) add(k, "n");
    add("headroom", "headroom");
    add("spend", "n spend");
    const actions = add("actions", "actions");
    cells.toggle = actions.appendChild(el("button", "btn", "Disable"));
    cells.toggle.type = "button";
    cells.probe = actions.appendChild(el("button", "btn", "Probe now"));
    cells.probe.type = "button";
    cells.toggle.addEventListener("click", () => act(name, cells.toggle.dataset.action, cells.toggle));
    cells.probe.addEventListener("click", () => act(name, "probe", cells.probe));
    for (const [k, td] of Object.entries(cells)) {
      if (td.tagName === "TD") td.dataset.label = LABELS[k] || "";
    }
    tr.dataset.account = name;
    return { tr, cells };
  }

  const LABELS = {
    until: "until", requests: "requests", failures: "failures", in_flight: "in flight", p50: "p50 ms",
    p95: "p95 ms", tokens: "tokens in / out", cache: "cache r / w", share: "cache read",
    headroom: "headroom", spend: "spend",
  };

  function renderAccounts(doc) {
    const body = document.querySelector("#accounts tbody");
    const seen = new Set();
    const now = serverNow();
    for (const acc of doc.accounts) {
      seen.add(acc.name);
      let row = rows.get(acc.name);
      if (!row) {
        row = accountRow(acc.name);
        rows.set(acc.name, row);
      }
      if (body.lastChild !== row.tr) body.appendChild(row.tr); // keeps the proxy's order
      const c = row.cells;
      const state = STATES.includes(acc.state) ? acc.state : "unknown";
      setText(c.badge, acc.state);
      c.badge.className = "badge st-" + state;
      row.tr.className = "st-row-" + state;
      setText(c.reason, acc.reason || "");
      setText(c.rule, acc.last_rule ? "rule: " + acc.last_rule : "");
      c.rule.hidden = !acc.last_rule;
      setText(c.error, acc.last_error ? "last error: " + acc.last_error : "");
      c.error.title = acc.last_error || "";
      const until = typeof acc.until === "number" && COUNTDOWN.has(acc.state) ? acc.until - now : null;
      setText(c.until, until === null ? "–" : "in " + duration(until));
      setText(c.requests, int(acc.requests));
      setText(c.failures, int(acc.failures));
      setText(c.in_flight, int(acc.in_flight));
      setText(c.p50, ms(acc.p50_ms));
      setText(c.p95, ms(acc.p95_ms));
      const u = acc.usage || {};
      setText(c.tokens, compact(u.input_tokens) + " / " + compact(u.output_tokens));
      setText(c.cache, compact(u.cache_read_input_tokens) + " / " + compact(u.cache_creation_input_tokens));
      setText(c.share, pct(acc.cache_read_share));
      setText(c.headroom, headroom(acc));
      setText(c.spend, spend(acc));
      c.spend.title = spendDetail(acc);
      c.headroom.classList.toggle("low", typeof acc.headroom === "number" && acc.headroom < 0.1);
      const disabled = acc.state === "disabled" || acc.enabled === false;
      c.toggle.dataset.action = disabled ? "enable" : "disable";
      setText(c.toggle, disabled ? "Enable" : "Disable");
      const actions = doc.actions || {};
      c.toggle.hidden = !actions.enable_disable;
      c.probe.hidden = !actions.probe;
      c.probe.disabled = c.probe.disabled || disabled;
    }
    const table = $("accounts");
    table.classList.toggle("no-headroom", !doc.accounts.some((a) => headroom(a) !== "–"));
    table.classList.toggle("no-spend", !doc.accounts.some((a) => spend(a) !== "–"));
    for (const [name, row] of rows) {
      if (!seen.has(name)) {
        row.tr.remove();
        rows.delete(name);
      }
    }
  }

  function renderRecent(recent) {
    const body = document.querySelector("#recent tbody");
    const fresh = [];
    for (const r of recent) {
      const tr = el("tr", r.outcome === "ok" && r.status < 400 ? "" : "bad");
      const cell = (text, cls, label) => {
        const td = el("td", cls, text);
        td.dataset.label = label;
        tr.appendChild(td);
      };
      cell(clock(r.at), "n", "time");
      cell(r.account || "–", "", "account");
      cell(r.status, "n", "status");
      cell(r.outcome, "", "outcome");
      const why = (r.failovers || []).map((f) => f.account + ": " + f.reason).join("; ");
      cell(why || "–", why ? "why" : "why none", "failed over");
      cell(ms(r.ttfb_ms), "n ms ttfb", "ttfb ms");
      cell(ms(r.duration_ms), "n ms dur", "duration ms");
      cell(compact(r.input_tokens) + " / " + compact(r.output_tokens), "n tok", "tokens in / out");
      fresh.push(tr);
    }
    if (!recent.length) {
      const tr = el("tr", "empty");
      const td = el("td", "muted", "No requests yet.");
      td.colSpan = 8;
      tr.appendChild(td);
      fresh.push(tr);
    }
    body.replaceChildren(...fresh);
  }

  // ---- charts: inline SVG, fixed size, redrawn only when a bucket changes --------------------

  let W = 600; // the chart's width in px, read from its box at each draw: text is never stretched
  const H = 150;
  const PAD = { l: 40, r: 6, t: 8, b: 18 };
  let drawn = "";

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function frame(maxY, n, end, bucket, unit) {
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, class: "svg", role: "img" });
    const plotH = H - PAD.t - PAD.b;
    for (const f of [0, 0.5, 1]) {
      const y = PAD.t + plotH * (1 - f);
      root.appendChild(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "grid" }));
      const label = svg("text", { x: PAD.l - 4, y: y + 3, class: "tick", "text-anchor": "end" });
      const v = maxY * f;
      label.textContent = (Number.isInteger(v) ? String(v) : v.toFixed(1)) + (f === 1 ? unit : "");
      root.appendChild(label);
    }
    for (const minutesAgo of [15, 10, 5, 0]) {
      const x = PAD.l + (W - PAD.l - PAD.r) * (1 - minutesAgo / 15);
      const label = svg("text", { x, y: H - 4, class: "tick", "text-anchor": minutesAgo === 15 ? "start" : minutesAgo === 0 ? "end" : "middle" });
      label.textContent = minutesAgo ? "-" + minutesAgo + "m" : clock(end);
      root.appendChild(label);
    }
    return root;
  }

  function xAt(i, n) {
    return PAD.l + ((W - PAD.l - PAD.r) * i) / n;
  }

  function yAt(v, maxY) {
    return PAD.t + (H - PAD.t - PAD.b) * (1 - v / maxY);
  }

  function measure(target) {
    W = Math.max(200, Math.floor(target.clientWidth || 600));
  }

  function stacked(target, seriesByName, n, end, bucket, unit, paint) {
    measure(target);
    const names = Object.keys(seriesByName);
    const totals = new Array(n).fill(0);
    for (const name of names) seriesByName[name].forEach((v, i) => { totals[i] += v || 0; });
    const maxY = niceMax(Math.max(0, ...totals));
    const root = frame(maxY, n, end, bucket, unit);
    const base = new Array(n).fill(0);
    const w = Math.max(1, (W - PAD.l - PAD.r) / n - 0.6);
    for (const name of names) {
      const g = svg("g", { class: "series " + paint(name) });
      seriesByName[name].forEach((v, i) => {
        if (!v) return;
        const y0 = yAt(base[i], maxY);
        const y1 = yAt(base[i] + v, maxY);
        g.appendChild(svg("rect", { x: xAt(i, n).toFixed(1), y: y1.toFixed(1), width: w.toFixed(1), height: Math.max(0.5, y0 - y1).toFixed(1) }));
        base[i] += v;
      });
      root.appendChild(g);
    }
    target.replaceChildren(root);
  }

  function lines(target, seriesByName, n, end, bucket) {
    measure(target);
    let max = 0;
    for (const values of Object.values(seriesByName)) for (const v of values) if (typeof v === "number") max = Math.max(max, v);
    const maxY = niceMax(max);
    const root = frame(maxY, n, end, bucket, "");
    for (const [name, values] of Object.entries(seriesByName)) {
      let d = "";
      let pen = false;
      values.forEach((v, i) => {
        if (typeof v !== "number") { pen = false; return; }
        const x = xAt(i + 0.5, n).toFixed(1);
        const y = yAt(v, maxY).toFixed(1);
        d += (pen ? "L" : "M") + x + " " + y + " ";
        pen = true;
      });
      if (d) root.appendChild(svg("path", { d: d.trim(), class: "line " + colour(name) }));
    }
    target.replaceChildren(root);
  }

  function renderCharts(doc) {
    const s = doc.series;
    if (!s) return;
    const key = JSON.stringify([s.end, s.requests, s.ttfb_p50_ms, s.errors]);
    if (key === drawn) return;
    drawn = key;
    const n = Math.max(1, ...Object.values(s.requests).map((v) => v.length), ...Object.values(s.errors).map((v) => v.length));
    const rates = {};
    for (const [name, counts] of Object.entries(s.requests)) rates[name] = counts.map((c) => c / s.bucket_s);
    stacked($("c-rate"), rates, n, s.end, s.bucket_s, "/s", colour);
    lines($("c-ttfb"), s.ttfb_p50_ms, n, s.end, s.bucket_s);
    stacked($("c-errors"), s.errors, n, s.end, s.bucket_s, "", errorColour);
    legend($("legend"), Object.keys(s.requests), colour, "no accounts");
    legend($("legend-errors"), Object.keys(s.errors), errorColour, "no errors in 15 min");
  }

  function legend(target, names, paint, none) {
    const items = names.map((name) => {
      const item = el("span", "item");
      item.appendChild(el("span", "swatch " + paint(name)));
      item.appendChild(el("span", "", name));
      return item;
    });
    if (!items.length) items.push(el("span", "item", none));
    target.replaceChildren(...items);
  }

  // ---- start -------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("keyform").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("key").value.trim();
      if (!value) return;
      sessionStorage.setItem(KEY_STORE, value);
      $("key").value = "";
      setText($("keyerror"), "");
      $("keybox").hidden = true;
      start();
    });
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        drawn = "";
        if (last) renderCharts(last);
      }, 150);
    });
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) stop();
      else start();
    });
    start();
  });
})();
