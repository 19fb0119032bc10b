"""Configuration from the environment: ``CTCT_*`` for every setting not passed, explicit arguments first,
and proxies from ``HTTP(S)_PROXY``/``NO_PROXY`` that never catch a loopback request.

End to end against the sandbox on loopback; the name table and the proxy choice as plain values.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping

import pytest

from ctct_partner_async import (
    DEFAULT_BASE_URL,
    DEFAULT_LEGACY_URL,
    DEFAULT_TOKEN_URL,
    LegacyBillingClient,
    NewAccount,
    PartnerClient,
    Request,
    Response,
    RetryPolicy,
    TokenSettings,
    TransportError,
    ValidationError,
    _environ,
)
from ctct_partner_async._pipeline import ClientOptions, transport_for
from ctct_partner_async._transport import DIRECT, Proxies
from ctct_partner_async.cli import options as cli_options
from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox
from ctct_partner_async.testing import MockTransport

API_KEY = "env-api-key-3f9c"
CLIENT_ID = "env-client-7d21"
CLIENT_SECRET = "env-secret-b04e"
PASSWORD = "env-password-5a6b"
JWT = "header.payload-env-jwt.signature"
ONE_PROCESS = TokenSettings(first_request_jitter=0)


def sandbox_environ(handle: SandboxHandle, **extra: str) -> dict[str, str]:
    """The variables a user exports to point the SDK at ``handle``."""
    config = handle.sandbox.config
    return {
        "CTCT_API_KEY": config.api_key,
        "CTCT_CLIENT_ID": config.client_id,
        "CTCT_CLIENT_SECRET": config.client_secret,
        "CTCT_BASE_URL": handle.base_url,
        "CTCT_TOKEN_URL": handle.token_url,
        "CTCT_RATE_LIMIT": "0",
        **extra,
    }


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0)) as handle:
        yield handle


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mock(handler: MockTransport | None = None) -> MockTransport:
    return handler or MockTransport(lambda r: Response.from_json(200, []))


async def tokens() -> str:
    return JWT


def new_account(i: int = 1) -> NewAccount:
    return NewAccount(contact_email=f"e{i}@example.com", login_name=f"env_client_{i:03d}", password=PASSWORD,
                      country_code="US", state_code="MA", organization_name="Env Org")  # fmt: skip


# -- PartnerClient ----------------------------------------------------------------------------------------
async def test_partner_client_with_no_arguments_runs_on_the_environment(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's exports and ``PartnerClient()``: every setting from os.environ, calls succeed."""
    for name, value in sandbox_environ(sandbox).items():
        monkeypatch.setenv(name, value)
    async with PartnerClient(token_settings=ONE_PROCESS) as client:
        assert client.options.base_url == sandbox.base_url
        assert client.limiter.rate is None  # CTCT_RATE_LIMIT=0
        result = await client.accounts.create(new_account())
        assert await client.webhooks.list() is not None
    assert result.encoded_account_id == sandbox.sandbox.accounts()[0]["encoded_account_id"]
    assert [e["operation"] for e in sandbox.sandbox.request_log()][0] == "token"


async def test_environ_parameter_replaces_os_environ(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``environ=`` is read instead of os.environ (whose wrong values are then ignored)."""
    monkeypatch.setenv("CTCT_BASE_URL", "https://wrong.example/v3")
    monkeypatch.setenv("CTCT_RATE_LIMIT", "not a number")
    async with PartnerClient(environ=sandbox_environ(sandbox), token_settings=ONE_PROCESS) as client:
        await client.webhooks.list()
    with pytest.raises(ValidationError) as info:
        PartnerClient(environ={})
    assert [e.field for e in info.value.errors] == ["api_key", "client_id", "client_secret"]


def test_missing_required_settings_name_the_argument_and_the_variable() -> None:
    """Every missing credential at once, each with its argument and its variable."""
    with pytest.raises(ValidationError) as info:
        PartnerClient(environ={"CTCT_CLIENT_ID": CLIENT_ID})
    assert str(info.value) == (
        "api_key: is required (pass api_key= or set CTCT_API_KEY); "
        "client_secret: is required (pass client_secret= or set CTCT_CLIENT_SECRET)"
    )


def test_explicit_arguments_win_and_the_variable_is_not_read() -> None:
    """A passed setting wins over its variable, even over one that would be refused."""
    environ = {"CTCT_API_KEY": "other-key-1234", "CTCT_BASE_URL": "http://not-allowed.example",
               "CTCT_TOKEN_URL": "ftp://nope", "CTCT_RATE_LIMIT": "fast", "CTCT_AUTHORIZATION_PREFIX": "Bearer"}  # fmt: skip
    client = PartnerClient(api_key=API_KEY, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                           base_url="https://api.example/v3", token_url="https://auth.example/oauth2/token",
                           rate_limit=2.5, authorization_prefix="", environ=environ, transport=mock())  # fmt: skip
    assert (client.options.base_url, client.options.rate_limit) == ("https://api.example/v3", 2.5)
    none_passed = PartnerClient(api_key=API_KEY, token_provider=tokens, rate_limit=None,
                                environ={"CTCT_RATE_LIMIT": "9"}, transport=mock())  # fmt: skip
    assert none_passed.options.rate_limit is None  # None passed for rate_limit is "no limit", not "unset"


def test_empty_variables_count_as_unset() -> None:
    """An empty variable is the default for optional settings and missing for required ones."""
    environ = dict.fromkeys(_environ.VARIABLES, "")
    with pytest.raises(ValidationError) as info:
        PartnerClient(environ=environ)
    assert "pass api_key= or set CTCT_API_KEY" in str(info.value)
    client = PartnerClient(api_key=API_KEY, token_provider=tokens, environ=environ, transport=mock())
    assert (client.options.base_url, client.options.rate_limit) == (DEFAULT_BASE_URL, 4.0)


def test_a_required_argument_passed_empty_is_refused() -> None:
    """``api_key=""`` is a mistake in the caller's code, not a request to read the environment."""
    with pytest.raises(ValidationError, match=r"^api_key: must not be empty$"):
        PartnerClient(api_key="", token_provider=tokens, environ={"CTCT_API_KEY": API_KEY})


def test_token_provider_needs_no_client_credentials() -> None:
    """With a token provider only the API key is required; client id and secret are not looked for."""
    client = PartnerClient(token_provider=tokens, environ={"CTCT_API_KEY": API_KEY}, transport=mock())
    assert client.options.base_url == DEFAULT_BASE_URL


async def test_token_url_and_prefix_come_from_the_environment() -> None:
    """CTCT_TOKEN_URL is where the token is asked for; CTCT_AUTHORIZATION_PREFIX gets its space."""

    def handler(request: Request) -> Response:
        if request.url.endswith("/oauth2/token"):
            return Response.from_json(200, {"access_token": JWT, "expires_in": 3600, "token_type": "Bearer"})
        return Response.from_json(200, [])

    transport = MockTransport(handler)
    environ = {"CTCT_API_KEY": API_KEY, "CTCT_CLIENT_ID": CLIENT_ID, "CTCT_CLIENT_SECRET": CLIENT_SECRET,
               "CTCT_TOKEN_URL": "https://auth.example/oauth2/token", "CTCT_AUTHORIZATION_PREFIX": "Bearer"}  # fmt: skip
    async with PartnerClient(environ=environ, transport=transport, token_settings=ONE_PROCESS) as client:
        await client.webhooks.list()
    token_request, api_request = transport.requests
    assert token_request.url == "https://auth.example/oauth2/token"
    assert api_request.headers["Authorization"] == "Bearer " + JWT
    assert api_request.headers["x-api-key"] == API_KEY


@pytest.mark.parametrize(
    ("text", "quota"),
    [("250000", 250_000), ("250_000", 250_000), ("0", None), (" none ", None), ("", 10_000)],
)
def test_daily_quota_from_the_environment(text: str, quota: int | None) -> None:
    """A raised key's 250,000 a day; 0 or none when not known; empty for the default of 10,000. The v2
    client's key is another, so it does not read the variable."""
    client = PartnerClient(api_key=API_KEY, token_provider=tokens, environ={"CTCT_DAILY_QUOTA": text},
                           transport=mock())  # fmt: skip
    assert client.quota.limit == quota
    legacy = LegacyBillingClient(username="u", password="p", api_key="k", environ={"CTCT_DAILY_QUOTA": "5"})
    assert legacy.options.daily_quota == 10_000


@pytest.mark.parametrize("text", ["-1", "many", "1.5", "١٠", "9" * 13])
def test_a_bad_daily_quota_names_the_variable(text: str) -> None:
    """A value that isn't a whole number, 0 or none is a ValidationError on CTCT_DAILY_QUOTA, before
    anything is sent; an explicit argument wins without reading it."""
    with pytest.raises(ValidationError) as info:
        PartnerClient(api_key=API_KEY, token_provider=tokens, environ={"CTCT_DAILY_QUOTA": text})
    assert str(info.value) == (
        "CTCT_DAILY_QUOTA: must be a whole number of requests a day, at least 1, or 0 or none when not known"
    )
    client = PartnerClient(api_key=API_KEY, token_provider=tokens, environ={"CTCT_DAILY_QUOTA": text},
                           daily_quota=7, transport=mock())  # fmt: skip
    assert client.quota.limit == 7


@pytest.mark.parametrize(
    ("text", "rate"),
    [("0", None), ("none", None), (" None ", None), ("0.0", None), ("2.5", 2.5), ("10", 10.0), ("", 4.0)],
)
def test_rate_limit_from_the_environment(text: str, rate: float | None) -> None:
    """A number of requests per second; 0 or none for no limit; empty for the default of 4."""
    client = PartnerClient(api_key=API_KEY, token_provider=tokens, environ={"CTCT_RATE_LIMIT": text},
                           transport=mock())  # fmt: skip
    assert client.options.rate_limit == rate
    assert client.limiter.rate == rate


@pytest.mark.parametrize("text", ["-1", "fast", "nan", "inf", "4/s", "1e400"])
def test_a_bad_rate_limit_names_the_variable(text: str) -> None:
    """A value that isn't a positive number, 0 or none is a ValidationError on CTCT_RATE_LIMIT."""
    with pytest.raises(ValidationError) as info:
        PartnerClient(api_key=API_KEY, token_provider=tokens, environ={"CTCT_RATE_LIMIT": text})
    assert str(info.value) == (
        "CTCT_RATE_LIMIT: must be a positive number of requests per second, or 0 or none for no limit"
    )


@pytest.mark.parametrize(
    ("variable", "argument"), [("CTCT_BASE_URL", "base_url"), ("CTCT_TOKEN_URL", "token_url")]
)
def test_a_bad_url_from_the_environment_names_the_variable(variable: str, argument: str) -> None:
    """A plain-http URL off loopback is refused naming the variable it came from, or the argument."""
    environ = {"CTCT_API_KEY": API_KEY, "CTCT_CLIENT_ID": CLIENT_ID, "CTCT_CLIENT_SECRET": CLIENT_SECRET}
    with pytest.raises(ValidationError) as info:
        PartnerClient(environ={**environ, variable: "http://api.example/v3"})
    assert info.value.field == variable
    with pytest.raises(ValidationError) as info:
        PartnerClient(environ=environ, **{argument: "http://api.example/v3"})  # type: ignore[arg-type]  # a str either way
    assert info.value.field == argument


def test_secrets_never_show_in_errors_or_reprs() -> None:
    """The key, client secret and v2 password read from the environment stay out of every message."""
    environ = {"CTCT_API_KEY": API_KEY, "CTCT_CLIENT_ID": CLIENT_ID, "CTCT_CLIENT_SECRET": CLIENT_SECRET,
               "CTCT_LEGACY_USERNAME": "v2-user", "CTCT_LEGACY_PASSWORD": PASSWORD,
               "CTCT_LEGACY_API_KEY": API_KEY, "CTCT_BASE_URL": f"http://{CLIENT_SECRET}.example",
               "HTTPS_PROXY": f"socks5://user:{PASSWORD}@proxy.example:1080"}  # fmt: skip
    shown: list[str] = []
    for build in (lambda: PartnerClient(environ=environ), lambda: LegacyBillingClient(environ=environ)):
        with pytest.raises(ValidationError) as info:
            build()
        shown += [str(info.value), repr(info.value.errors)]
    del environ["CTCT_BASE_URL"], environ["HTTPS_PROXY"]
    partner, legacy = PartnerClient(environ=environ), LegacyBillingClient(environ=environ)
    shown += [
        repr(partner),
        repr(partner.options),
        repr(partner.token_provider),
        repr(legacy),
        repr(legacy.options),
    ]
    shown += [repr(partner._pipeline.credentials), repr(legacy._pipeline.credentials)]
    for secret in (API_KEY, CLIENT_SECRET, PASSWORD):
        assert not [text for text in shown if secret in text]


# -- LegacyBillingClient ----------------------------------------------------------------------------------
async def test_legacy_client_reads_its_own_variables(sandbox: SandboxHandle) -> None:
    """CTCT_LEGACY_USERNAME, _PASSWORD, _API_KEY and _BASE_URL make a working v2 client."""
    config = sandbox.sandbox.config
    async with PartnerClient(environ=sandbox_environ(sandbox), token_settings=ONE_PROCESS) as v3:
        created = await v3.accounts.create(new_account())
    assert created.encoded_account_id is not None
    environ = {"CTCT_LEGACY_USERNAME": config.client_id, "CTCT_LEGACY_PASSWORD": config.client_secret,
               "CTCT_LEGACY_API_KEY": config.api_key, "CTCT_LEGACY_BASE_URL": sandbox.legacy_url,
               "CTCT_RATE_LIMIT": "none"}  # fmt: skip
    async with LegacyBillingClient(environ=environ) as v2:
        assert v2.options.rate_limit is None
        plan = await v2.get_plan(created.encoded_account_id)
    assert plan.plan_type == 1  # the trial


def test_legacy_client_never_falls_back_to_the_v3_api_key() -> None:
    """CTCT_API_KEY is the v3 key: the v2 client asks for CTCT_LEGACY_API_KEY instead of sending it."""
    environ = {"CTCT_API_KEY": API_KEY, "CTCT_LEGACY_USERNAME": "v2-user", "CTCT_LEGACY_PASSWORD": PASSWORD}
    with pytest.raises(ValidationError) as info:
        LegacyBillingClient(environ=environ)
    assert str(info.value) == "api_key: is required (pass api_key= or set CTCT_LEGACY_API_KEY)"
    client = LegacyBillingClient(api_key="v2-key-9876", environ=environ, transport=mock())
    assert client.options.base_url == DEFAULT_LEGACY_URL


# -- the name table -----------------------------------------------------------------------------------------
def test_one_table_names_every_setting_for_the_api_and_the_cli() -> None:
    """Every flag of the table is an option of the CLI's commands; every variable is CTCT_*; defaults are
    the clients' own."""
    parser = cli_options.connection_options()
    flags = {flag for action in parser._actions for flag in action.option_strings}
    assert {s.flag for s in _environ.PARTNER_SETTINGS if s.flag} <= flags
    assert all(name.startswith("CTCT_") for name in _environ.VARIABLES)
    assert len(set(_environ.VARIABLES)) == len(_environ.VARIABLES) == 14
    defaults = {s.variable: s.default for s in _environ.PARTNER_SETTINGS + _environ.LEGACY_SETTINGS}
    assert defaults["CTCT_BASE_URL"] == DEFAULT_BASE_URL and defaults["CTCT_TOKEN_URL"] == DEFAULT_TOKEN_URL
    assert defaults["CTCT_LEGACY_BASE_URL"] == DEFAULT_LEGACY_URL
    assert float(defaults["CTCT_RATE_LIMIT"]) == ClientOptions(base_url=DEFAULT_BASE_URL).rate_limit
    assert int(defaults["CTCT_DAILY_QUOTA"]) == ClientOptions(base_url=DEFAULT_BASE_URL).daily_quota


# -- proxies ------------------------------------------------------------------------------------------------
async def test_loopback_is_never_proxied(
    sandbox: SandboxHandle, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every proxy variable pointing at a closed port, requests to the sandbox still go direct."""
    dead = f"http://127.0.0.1:{closed_port}"
    proxies = {"HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "ALL_PROXY": dead}
    async with PartnerClient(
        environ=sandbox_environ(sandbox, **proxies), token_settings=ONE_PROCESS
    ) as client:
        await client.webhooks.list()
    for name, value in {**sandbox_environ(sandbox), **proxies}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with PartnerClient(token_settings=ONE_PROCESS) as client:  # os.environ, the default
        await client.accounts.create(new_account())
    localhost = sandbox.base_url.replace("127.0.0.1", "localhost")
    async with PartnerClient(base_url=localhost, token_settings=ONE_PROCESS) as client:
        await client.webhooks.list()


class FakeProxy:
    """A proxy on loopback that records what it is asked (first line and headers) and refuses it."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.asked.append(head.decode("latin-1").split("\r\n")[:-2])
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def proxy() -> AsyncIterator[FakeProxy]:
    fake = FakeProxy()
    fake.server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    async with fake.server:
        yield fake


async def test_a_remote_host_goes_through_the_proxy_with_its_login(proxy: FakeProxy) -> None:
    """HTTPS_PROXY gets a CONNECT for the API host, the proxy's login in Proxy-Authorization and
    nothing of the API's credentials; the refused tunnel is a TransportError."""
    login = proxy.url.replace("http://", "http://proxy-user:proxy-pass@")
    environ = {"CTCT_API_KEY": API_KEY, "HTTPS_PROXY": login, "NO_PROXY": "other.example"}
    no_retry = RetryPolicy(max_attempts=1, max_throttle_retries=0)
    async with PartnerClient(token_provider=tokens, base_url="https://api.partner.example/v3", environ=environ,
                             retry_policy=no_retry, on_retry=None) as client:  # fmt: skip
        with pytest.raises(TransportError):
            await client.webhooks.list()
    [asked] = proxy.asked
    assert asked[0] == "CONNECT api.partner.example:443 HTTP/1.1"
    assert "Proxy-Authorization: Basic cHJveHktdXNlcjpwcm94eS1wYXNz" in asked
    assert not [line for line in asked if API_KEY in line or JWT in line]


def test_trust_env_false_uses_no_proxy() -> None:
    """trust_env=False: the proxy variables are not read (not even a bad one); with transport= it is
    refused, as the other aiohttp settings are."""
    environ = {"CTCT_API_KEY": API_KEY, "HTTPS_PROXY": "socks5://proxy.example:1080"}
    with pytest.raises(ValidationError, match=r"^HTTPS_PROXY: must be an http:// or https:// proxy URL"):
        PartnerClient(token_provider=tokens, environ=environ)
    client = PartnerClient(token_provider=tokens, environ=environ, trust_env=False)
    assert client._pipeline._owned is not None and client._pipeline._owned._proxies is None
    options = ClientOptions(base_url=DEFAULT_BASE_URL, trust_env=True)
    transport, _ = transport_for(options, {"HTTPS_PROXY": "http://proxy.example:3128"})
    assert transport._proxies is not None  # type: ignore[attr-defined]  # the aiohttp Transport
    with pytest.raises(ValidationError) as info:
        PartnerClient(token_provider=tokens, environ=environ, trust_env=False, transport=mock())
    assert info.value.field == "trust_env"


def route(environ: Mapping[str, str], url: str) -> str | None:
    proxies = Proxies.from_environ(environ)
    return None if proxies is None else proxies.route(url)[0]


@pytest.mark.parametrize(
    ("url", "proxied"),
    [
        ("https://api.cc.email/v3/partner/accounts", True),
        ("https://auth.example.com/oauth2/token", False),  # NO_PROXY example.com covers its subdomains
        ("https://example.com/x", False),
        ("https://notexample.com/x", True),
        ("https://svc.internal/x", False),  # ".internal": a leading dot is optional
        ("https://other.example:8443/x", False),  # host:port
        ("https://other.example/x", True),
        ("http://127.0.0.1:8080/v3", False),
        ("http://127.1.2.3/v3", False),
        ("http://localhost:8080/v3", False),
        ("http://[::1]:8080/v3", False),
        ("http://api.cc.email/x", False),  # no HTTP_PROXY: http:// goes direct
    ],
)
def test_the_proxy_is_chosen_by_scheme_no_proxy_and_loopback(url: str, proxied: bool) -> None:
    """HTTPS_PROXY for https://, NO_PROXY's hosts, domains and host:port direct, loopback always direct."""
    environ = {"HTTPS_PROXY": "proxy.example:3128", "NO_PROXY": "example.com, .internal,other.example:8443"}
    assert route(environ, url) == ("http://proxy.example:3128" if proxied else None)


def test_proxy_variables_lowercase_first_and_httpoxy() -> None:
    """Lowercase names win; HTTP_PROXY is ignored in a CGI script; NO_PROXY=* sends everything direct;
    no variable at all means no proxy object (nothing to look up per request)."""
    both = {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2", "HTTP_PROXY": "http://plain:3"}
    assert route(both, "https://api.cc.email/") == "http://lower:1"
    assert route(both, "http://api.cc.email/") == "http://plain:3"
    assert route({**both, "REQUEST_METHOD": "GET"}, "http://api.cc.email/") is None
    assert route({**both, "no_proxy": "*"}, "https://api.cc.email/") is None
    assert Proxies.from_environ({"HTTPS_PROXY": "", "NO_PROXY": "x"}) is None
    proxies = Proxies.from_environ({"HTTPS_PROXY": "http://u%40corp:p%3Ass@proxy:3128"})
    assert proxies is not None
    assert proxies.route("https://api.cc.email/v3") == (
        "http://proxy:3128",
        {"Proxy-Authorization": "Basic dUBjb3JwOnA6c3M="},  # u@corp:p:ss
    )
    assert proxies.route("https://localhost/v3") == DIRECT
