"""Whole-file validation: each bad snippet gives one exact message naming its location."""

from __future__ import annotations

from pathlib import Path

import pytest

from qcc.config import Account, Cluster, Config, Credential
from qcc.config.model import HealthSettings, ProxySettings, mask_secret
from qcc.config.store import parse
from qcc.errors import ConfigError, ConfigValidationError, CredentialError, NotFoundError
from qcc.routing.rules import Rule, classify_body

PATH = Path("/cfg/config.toml")
ACCOUNT = '[clusters.prod.accounts.main]\nbase_url = "https://api.anthropic.com"\n'
WITH_KEY = ACCOUNT + 'api_key = "sk-ant-test-0000"\n'
LOC = "clusters.prod.accounts.main"
NAME_RULE = "must be 1-64 letters, digits, '-' or '_', starting with a letter or digit"
RULE = '[[clusters.prod.rules]]\nmatch = "ok"\naction = "fail_over"\n'

INVALID = [
    pytest.param(
        ACCOUNT.replace("https://api.anthropic.com", "ftp://example.com") + 'api_key = "k"\n',
        f"{LOC}.base_url: must be an http(s) URL such as https://api.anthropic.com",
        id="url-scheme",
    ),
    pytest.param(
        ACCOUNT.replace("https://api.anthropic.com", "api.anthropic.com") + 'api_key = "k"\n',
        f"{LOC}.base_url: must be an http(s) URL such as https://api.anthropic.com",
        id="url-no-scheme",
    ),
    pytest.param(
        f'[{LOC}]\napi_key = "k"\n',
        f"{LOC}.base_url: is missing; set the account's URL",
        id="url-missing",
    ),
    pytest.param(
        'colour = "red"\n',
        "colour: unknown key; expected one of: "
        "default_cluster, proxy, timeouts, health, retry, clusters, pricing, shared",
        id="unknown-top-key",
    ),
    pytest.param(
        WITH_KEY + "wieght = 2\n",
        f"{LOC}.wieght: unknown key; expected one of: base_url, api_key, auth_token, "
        "api_key_env, auth_token_env, weight, priority, enabled, models, probe, "
        "budget_daily_usd, budget_monthly_usd, proxy, ca_file, max_connections, "
        "api_key_command, auth_token_command, oauth, credential_ttl",
        id="unknown-account-key",
    ),
    pytest.param(
        ACCOUNT + 'api_key = "k"\nauth_token = "t"\n',
        f"{LOC}: has both api_key and auth_token; keep exactly one credential",
        id="two-credentials",
    ),
    pytest.param(
        ACCOUNT,
        f"{LOC}: needs a credential: set one of api_key, auth_token, api_key_env, auth_token_env, "
        "api_key_command, auth_token_command or an [oauth] table",
        id="no-credential",
    ),
    pytest.param(
        ACCOUNT + 'api_key = ""\n', f"{LOC}.api_key: must be a non-empty string", id="empty-key"
    ),
    pytest.param(
        ACCOUNT + 'api_key = "sk-ant-x "\n',
        f"{LOC}.api_key: starts or ends with whitespace; remove it (qcc does not strip it for you)",
        id="key-trailing-space",
    ),
    pytest.param(
        ACCOUNT + 'api_key_env = "1BAD-NAME"\n',
        f"{LOC}.api_key_env: must be the name of an environment variable, e.g. MY_API_KEY",
        id="bad-env-name",
    ),
    pytest.param(
        WITH_KEY + "weight = -1\n", f"{LOC}.weight: must be an integer >= 0", id="weight-negative"
    ),
    pytest.param(
        WITH_KEY + 'weight = "3"\n', f"{LOC}.weight: must be an integer >= 0", id="weight-string"
    ),
    pytest.param(
        WITH_KEY + "priority = true\n",
        f"{LOC}.priority: must be an integer >= 0",
        id="priority-bool",
    ),
    pytest.param(
        WITH_KEY + "enabled = 1\n", f"{LOC}.enabled: must be true or false", id="enabled-int"
    ),
    pytest.param(
        WITH_KEY + 'models = { "claude-x" = 1 }\n',
        f'{LOC}.models."claude-x": must be a non-empty string',
        id="model-target",
    ),
    pytest.param(
        WITH_KEY + 'probe = "ping"\n',
        f"{LOC}.probe: must be one of: auto, count_tokens, models, message",
        id="probe",
    ),
    pytest.param(
        '[clusters.prod]\nstrategy = "random"\n',
        "clusters.prod.strategy: must be one of: priority, round-robin, weighted, least-latency",
        id="strategy",
    ),
    pytest.param(
        '[clusters.prod]\nsticky = "yes"\n',
        "clusters.prod.sticky: must be true or false",
        id="sticky",
    ),
    pytest.param(
        '[clusters."bad name"]\n',
        f"clusters.bad name: 'bad name' is not a valid name: {NAME_RULE}",
        id="cluster-name",
    ),
    pytest.param("clusters = 3\n", "clusters: must be a table", id="clusters-not-table"),
    pytest.param(
        'default_cluster = "nope"\n[clusters.prod]\n',
        "default_cluster: names cluster 'nope', which does not exist; "
        "create it with 'qcc cluster add nope' or change default_cluster",
        id="default-cluster",
    ),
    pytest.param(
        "[proxy]\nport = 70000\n",
        "proxy.port: must be an integer from 1 to 65535",
        id="port-high",
    ),
    pytest.param(
        "[proxy]\nport = 0\n", "proxy.port: must be an integer from 1 to 65535", id="port-zero"
    ),
    pytest.param(
        "[timeouts]\nconnect = 0\n",
        "timeouts.connect: must be a number of seconds > 0",
        id="timeout-zero",
    ),
    pytest.param(
        "[retry]\nbudget_ratio = 2\n",
        "retry.budget_ratio: must be a number from 0 to 1",
        id="retry-ratio",
    ),
    pytest.param(
        "[health]\nexhausted_recheck = 0\n",
        "health.exhausted_recheck: must be a number of seconds > 0",
        id="exhausted-recheck",
    ),
    pytest.param(
        WITH_KEY + "budget_daily_usd = 0\n",
        f"{LOC}.budget_daily_usd: must be an amount in US dollars > 0, e.g. 20.0",
        id="budget-zero",
    ),
    pytest.param(
        WITH_KEY + 'budget_monthly_usd = "300"\n',
        f"{LOC}.budget_monthly_usd: must be an amount in US dollars > 0, e.g. 20.0",
        id="budget-string",
    ),
    pytest.param(
        "[clusters.prod]\nheadroom_min = 1.5\n",
        "clusters.prod.headroom_min: must be a number from 0 to 1",
        id="headroom-min",
    ),
    pytest.param(
        "[clusters.prod]\ncolour = 1\n",
        "clusters.prod.colour: unknown key; expected one of: "
        "strategy, sticky, headroom_min, rules, accounts, keys",
        id="unknown-cluster-key",
    ),
    pytest.param(
        '[clusters.prod]\nrules = "quota"\n',
        "clusters.prod.rules: must be an array of tables: write each rule under "
        "[[clusters.prod.rules]]",
        id="rules-not-array",
    ),
    pytest.param(
        "[clusters.prod]\nrules = [1]\n",
        "clusters.prod.rules[0]: must be a table",
        id="rule-not-table",
    ),
    pytest.param(
        RULE + RULE + '[[clusters.prod.rules]]\nmatch = "quota"\naction = "explode"\n',
        "clusters.prod.rules[2].action: must be one of: "
        "exhausted, auth_failed, rate_limited, fail_over, pass_through",
        id="rule-action",
    ),
    pytest.param(
        '[[clusters.prod.rules]]\naction = "exhausted"\n',
        "clusters.prod.rules[0].match: is missing; "
        "set the text to look for in the error body (or re:<regex>)",
        id="rule-match-missing",
    ),
    pytest.param(
        '[[clusters.prod.rules]]\nmatch = "quota"\n',
        "clusters.prod.rules[0].action: is missing; "
        "set one of: exhausted, auth_failed, rate_limited, fail_over, pass_through",
        id="rule-action-missing",
    ),
    pytest.param(
        '[[clusters.prod.rules]]\nmatch = ""\naction = "exhausted"\n',
        "clusters.prod.rules[0].match: must be a non-empty string",
        id="rule-match-empty",
    ),
    pytest.param(
        '[[clusters.prod.rules]]\nmatch = "re:"\naction = "exhausted"\n',
        "clusters.prod.rules[0].match: needs a regular expression after re:",
        id="rule-regex-empty",
    ),
    pytest.param(
        RULE + '[[clusters.prod.rules]]\nmatch = "re:(quota"\naction = "exhausted"\n',
        "clusters.prod.rules[1].match: invalid regular expression after re: "
        "(missing ), unterminated subpattern at position 0); fix it",
        id="rule-regex-invalid",
    ),
    pytest.param(
        '[[clusters.prod.rules]]\nmatch = "quota"\naction = "exhausted"\nstatus = 600\n',
        "clusters.prod.rules[0].status: must be an HTTP status from 100 to 599",
        id="rule-status",
    ),
    pytest.param(
        '[[clusters.prod.rules]]\nmatch = "quota"\naction = "exhausted"\ncooldown = -1\n',
        "clusters.prod.rules[0].cooldown: must be a number of seconds > 0",
        id="rule-cooldown",
    ),
    pytest.param(
        '[[clusters.prod.rules]]\nmatch = "quota"\naction = "exhausted"\nmessage = "x"\n',
        "clusters.prod.rules[0].message: unknown key; expected one of: "
        "status, match, action, cooldown",
        id="rule-unknown-key",
    ),
    pytest.param(
        "[health]\nejection_base = 60\nejection_max = 30\n",
        "health.ejection_max: must be >= health.ejection_base",
        id="ejection-max-below-base",
    ),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_config_gives_exact_message(text: str, message: str) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        parse(text, PATH)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_invalid_toml_names_the_file() -> None:
    with pytest.raises(ConfigError) as caught:
        parse("default_cluster = \n", PATH)
    assert str(caught.value) == (
        "/cfg/config.toml: invalid TOML (Invalid value (at line 1, column 19)); "
        "fix the file by hand"
    )


def test_empty_file_is_empty_config() -> None:
    assert parse("", PATH) == Config()


CONTRACT_EXAMPLE = """\
default_cluster = "prod"

[proxy]
host = "127.0.0.1"
port = 7860
# access_key = "..."   # when set, clients must send it as x-api-key or Authorization: Bearer

[clusters.prod]
strategy = "weighted"        # priority | round-robin | weighted | least-latency
sticky = true                # keep one conversation on one account while it is healthy

[clusters.prod.accounts.main]
base_url = "https://api.anthropic.com"
api_key = "sk-ant-api03-SECRETSECRETSECRET-a1b2"
weight = 3                   # default 1
priority = 0                 # lower is preferred; default 0
enabled = true

[clusters.prod.accounts.main.models]   # optional: rename models for this account
"claude-sonnet-4-5" = "claude-sonnet-4-5-20250929"

[clusters.prod.accounts.relay]
base_url = "https://relay.example.com/api/"
auth_token_env = "RELAY_TOKEN"

[health]
ejection_base = 10
"""


def test_contract_example_loads() -> None:
    config = parse(CONTRACT_EXAMPLE, PATH)
    assert config.default_cluster == "prod"
    assert config.proxy == ProxySettings(host="127.0.0.1", port=7860)
    assert config.health == HealthSettings(ejection_base=10.0)
    prod = config.cluster()
    assert prod == config.cluster("prod")
    assert (prod.name, prod.strategy, prod.sticky) == ("prod", "weighted", True)
    main, relay = prod.accounts
    assert main == Account(
        name="main",
        base_url="https://api.anthropic.com",
        credential=Credential("api_key", "sk-ant-api03-SECRETSECRETSECRET-a1b2"),
        weight=3,
        priority=0,
        enabled=True,
        models={"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"},
    )
    assert relay.base_url == "https://relay.example.com/api"  # trailing slash dropped
    assert relay.credential == Credential("auth_token_env", "RELAY_TOKEN")
    assert (relay.weight, relay.priority, relay.enabled, dict(relay.models)) == (1, 0, True, {})
    assert prod.account("relay") is relay


def test_repr_never_shows_secrets() -> None:
    config = parse(CONTRACT_EXAMPLE, PATH)
    assert "SECRETSECRETSECRET" not in repr(config)


def test_unknown_names_are_not_found() -> None:
    config = parse(CONTRACT_EXAMPLE, PATH)
    with pytest.raises(NotFoundError, match="no cluster named 'dev'"):
        config.cluster("dev")
    with pytest.raises(NotFoundError, match="no account 'x' in cluster 'prod'"):
        config.cluster().account("x")


def test_cluster_without_default() -> None:
    two = parse("[clusters.a]\n[clusters.b]\n", PATH)
    with pytest.raises(NotFoundError, match="no default cluster; pass --cluster NAME"):
        two.cluster()
    assert parse("[clusters.only]\n", PATH).cluster().name == "only"
    with pytest.raises(NotFoundError, match="no cluster is configured"):
        Config().cluster()


def test_env_credential_resolution() -> None:
    api = Credential("api_key_env", "MY_KEY")
    assert api.from_env
    assert api.secret({"MY_KEY": "sk-from-env"}) == "sk-from-env"
    assert api.header({"MY_KEY": "sk-from-env"}) == ("x-api-key", "sk-from-env")
    token = Credential("auth_token_env", "MY_TOKEN")
    assert token.header({"MY_TOKEN": "tok"}) == ("authorization", "Bearer tok")
    with pytest.raises(CredentialError, match="environment variable MY_KEY is not set"):
        api.secret({})
    with pytest.raises(CredentialError):
        api.secret({"MY_KEY": ""})


def test_env_credential_reads_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCC_TEST_KEY", "sk-process")
    assert Credential("api_key_env", "QCC_TEST_KEY").secret() == "sk-process"


def test_inline_credentials() -> None:
    assert Credential("api_key", "sk-1").header() == ("x-api-key", "sk-1")
    assert Credential("auth_token", "tok").header() == ("authorization", "Bearer tok")


@pytest.mark.parametrize(
    ("credential", "masked"),
    [
        (Credential("api_key", "sk-ant-api03-SECRETSECRETSECRET-a1b2"), "sk-ant-…a1b2"),
        (Credential("auth_token", "tok-0123456789abcdefghijklmnopqrstuvwxyz"), "tok-012…wxyz"),
        (Credential("api_key", "short-secret"), "…cret"),
        (Credential("api_key", "0123456789abcdef"), "…cdef"),
        (Credential("api_key", "sho-rt"), "…"),
        (Credential("api_key", "tiny"), "…"),
        (Credential("api_key_env", "ANTHROPIC_API_KEY"), "$ANTHROPIC_API_KEY"),
    ],
)
def test_masked(credential: Credential, masked: str) -> None:
    assert credential.masked() == masked
    if not credential.from_env:
        assert credential.value not in credential.masked()


def test_mask_secret_keeps_at_most_eleven_characters() -> None:
    secret = "x" * 7 + "SECRET" * 10 + "y" * 4
    assert mask_secret(secret) == "xxxxxxx…yyyy"


def test_cluster_defaults() -> None:
    assert parse("[clusters.c]\n", PATH).cluster("c") == Cluster("c", "weighted", True, ())


RULES_EXAMPLE = """\
[clusters.prod]
headroom_min = 0.1

[[clusters.prod.rules]]
status = 403
match = "Daily Quota"
action = "exhausted"
cooldown = 600

[[clusters.prod.rules]]
match = 're:window\\s+closed'
action = "rate_limited"

[clusters.prod.accounts.main]
base_url = "https://api.anthropic.com"
api_key_env = "MAIN_KEY"
budget_daily_usd = 20
budget_monthly_usd = 300.5

[health]
exhausted_recheck = 900
"""


def test_rules_budgets_and_headroom_load() -> None:
    config = parse(RULES_EXAMPLE, PATH)
    prod = config.cluster("prod")
    assert prod.headroom_min == 0.1
    assert prod.rules == (
        Rule("Daily Quota", "exhausted", 403, 600.0, "clusters.prod.rules[0]"),
        Rule(r"re:window\s+closed", "rate_limited", None, None, "clusters.prod.rules[1]"),
    )
    (main,) = prod.accounts
    assert (main.budget_daily_usd, main.budget_monthly_usd) == (20.0, 300.5)
    assert config.health.exhausted_recheck == 900.0
    verdict = classify_body(prod.rules, 429, b"the 5h WINDOW closed")
    assert verdict is not None and verdict.action == "rate_limited"
    assert verdict.describe().startswith("HTTP 429 matched config rule 'clusters.prod.rules[1]'")


def test_rules_budgets_and_headroom_defaults() -> None:
    prod = parse(WITH_KEY, PATH).cluster("prod")
    assert (prod.rules, prod.headroom_min) == ((), 0.05)
    assert (prod.accounts[0].budget_daily_usd, prod.accounts[0].budget_monthly_usd) == (None, None)
    assert parse("", PATH).health.exhausted_recheck == 1800.0
