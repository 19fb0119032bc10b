"""Introspection under /_sandbox, the request log, and that no secret is ever recorded."""

from __future__ import annotations

import json

from ctct_partner_async.sandbox import SANDBOX_KEY, SandboxConfig, create_app
from ctct_partner_async.sandbox.ledger import redact_path
from tests.sandbox.conftest import StartSandbox
from tests.sandbox.support import CLIENT_SECRET, Api, provision


async def test_admin_accounts_and_one_account(api: Api) -> None:
    """GET /_sandbox/accounts lists accounts in creation order; /accounts/{id} shows one or 404s."""
    ids = [await api.create_ok(f"admin_user_{i}") for i in range(3)]
    listed = await api.admin("GET", "/accounts")
    assert [a["encoded_account_id"] for a in listed.body] == ids
    one = await api.admin("GET", f"/accounts/{ids[1]}")
    assert one.body["login_name"] == "admin_user_1"
    assert (await api.admin("GET", "/accounts/nope")).status == 404


async def test_admin_stats_count_requests_by_status_and_operation(api: Api) -> None:
    """GET /_sandbox/stats counts token and API requests, statuses, operations and creates."""
    await api.create_ok("stats_user")
    await api.create("stats_user")
    await api.call("GET", "/partner/accounts")
    stats = (await api.admin("GET", "/stats")).body
    assert stats["token_requests"] == 1
    assert stats["api_requests"] == 3
    assert stats["responses_by_status"] == {"201": 1, "409": 1, "200": 1}
    assert stats["requests_by_operation"] == {"create_account": 2, "list_accounts": 1}
    assert (stats["creates_attempted"], stats["creates_committed"], stats["accounts"]) == (2, 1, 1)


async def test_admin_requests_log_shape_and_limit(api: Api) -> None:
    """GET /_sandbox/requests gives time, method, path, status, operation, error_key (and login_name)."""
    await api.create_ok("log_user")
    await api.create("log_user")
    entries = (await api.admin("GET", "/requests")).body
    assert [e["operation"] for e in entries] == ["token", "create_account", "create_account"]
    conflict = entries[-1]
    assert {k: conflict[k] for k in ("method", "path", "status", "error_key", "login_name")} == {
        "method": "POST",
        "path": "/v3/partner/accounts",
        "status": 409,
        "error_key": "conflict",
        "login_name": "log_user",
    }
    assert conflict["time"] == api.handle.sandbox.clock()
    assert len((await api.admin("GET", "/requests?limit=1")).body) == 1


async def test_no_secret_is_ever_recorded(api: Api) -> None:
    """Neither the log, the stats nor the account views hold a token, password, secret or API key."""
    account = await api.create_ok("secret_user", password="hunter2-secret")
    await api.legacy("GET", account)
    await api.call("GET", "/partner/accounts", headers={"x-api-key": "leaky-wrong-key"})
    sandbox = api.handle.sandbox
    dumped = json.dumps([sandbox.request_log(), sandbox.stats(), sandbox.accounts()])
    for secret in (await api.token(), "hunter2-secret", CLIENT_SECRET, "sandbox-api-key", "leaky-wrong-key"):
        assert secret not in dumped


async def test_admin_reset_and_revoke(api: Api) -> None:
    """POST /_sandbox/reset empties the state (tokens stay valid); POST /_sandbox/revoke-tokens revokes."""
    await api.create_ok("reset_user")
    assert (await api.admin("POST", "/reset")).status == 200
    assert (await api.admin("GET", "/accounts")).body == []
    assert (await api.admin("GET", "/stats")).body["api_requests"] == 0
    assert (await api.call("GET", "/partner/accounts")).status == 200
    revoked = await api.admin("POST", "/revoke-tokens")
    assert revoked.body == {"revoked": 1}
    assert (await api.call("GET", "/partner/accounts")).status == 401


async def test_admin_seed_account_and_webhooks(api: Api) -> None:
    """POST /_sandbox/accounts seeds an account the API then sees; GET /_sandbox/webhooks lists hooks."""
    seeded = await api.admin("POST", "/accounts", {"login_name": "seeded_one", "organization_name": "Seed"})
    assert seeded.status == 201
    assert (await api.create("seeded_one")).status == 409
    assert (await api.admin("POST", "/accounts", {"organization_name": "x"})).status == 400
    assert (await api.admin("POST", "/accounts", {"login_name": "seeded_one"})).status == 400
    await api.call("PUT", "/partner/webhooks/subscriptions/4", json_body={"hook_uri": "https://h.example/4"})
    assert (await api.admin("GET", "/webhooks")).body == {"4": "https://h.example/4"}


async def test_admin_requests_are_not_counted(api: Api) -> None:
    """Admin calls are neither counted nor logged nor rate limited."""
    for _ in range(5):
        await api.admin("GET", "/stats")
    assert api.handle.sandbox.stats()["api_requests"] == 0
    assert api.handle.sandbox.request_log() == []


async def test_request_log_is_bounded(start_sandbox: StartSandbox) -> None:
    """The request log keeps only the last request_log_size entries."""
    api = await start_sandbox(request_log_size=3)
    for _ in range(5):
        await api.call("GET", "/partner/accounts")
    assert len(api.handle.sandbox.request_log()) == 3


async def test_handle_addresses(api: Api) -> None:
    """The handle's URLs are http://127.0.0.1:PORT plus /v3, /oauth2/token, /v2 and /_sandbox."""
    handle = api.handle
    root = f"http://127.0.0.1:{handle.port}"
    assert handle.port > 0
    assert (handle.url, handle.base_url, handle.token_url, handle.legacy_url, handle.admin_url) == (
        root,
        root + "/v3",
        root + "/oauth2/token",
        root + "/v2",
        root + "/_sandbox",
    )
    assert handle.sandbox is handle.app[SANDBOX_KEY]


def test_create_app_exposes_the_sandbox() -> None:
    """create_app puts the Sandbox under SANDBOX_KEY with the given config."""
    config = SandboxConfig(seed=3)
    app = create_app(config)
    assert app[SANDBOX_KEY].config is config


def test_redact_path_strips_api_key_only() -> None:
    """redact_path removes api_key from the query and keeps the rest."""
    assert redact_path("/v2/x", "api_key=k&a=1") == "/v2/x?a=1"
    assert redact_path("/v2/x", "api_key=k") == "/v2/x"
    assert redact_path("/v3/x", "limit=10") == "/v3/x?limit=10"
    assert redact_path("/v3/x", "") == "/v3/x"


async def test_create_with_provision_helper_sanity(api: Api) -> None:
    """The seed's own example body (6-character password) is refused: the spec says 8..80."""
    body = provision("partner_child_32", password="123456")
    result = await api.call("POST", "/partner/accounts", json_body=body)
    assert result.status == 400
    assert "password" in result.body[0]["error_message"]


async def test_admin_index_lists_the_endpoints(api: Api) -> None:
    """GET /_sandbox (and /_sandbox/) answers JSON listing every admin endpoint, not a 404."""
    index = await api.admin("GET", "")
    assert index.status == 200
    assert index.body == (await api.admin("GET", "/")).body
    listed = {(e["method"], e["path"]) for e in index.body["endpoints"]}
    assert {("GET", "/_sandbox/accounts"), ("POST", "/_sandbox/accounts"), ("GET", "/_sandbox/stats"),
            ("GET", "/_sandbox/requests"), ("GET", "/_sandbox/webhooks"), ("GET", "/_sandbox/faults"),
            ("PUT", "/_sandbox/faults"), ("POST", "/_sandbox/reset"),
            ("POST", "/_sandbox/revoke-tokens")} <= listed  # fmt: skip
    assert all(e["description"] for e in index.body["endpoints"])
    gets = [e["path"].removeprefix("/_sandbox") for e in index.body["endpoints"] if e["method"] == "GET"]
    for path in gets:  # every GET listed is served (the one with a parameter: 404 for no such account)
        expected = 404 if "{" in path else 200
        assert (await api.admin("GET", path.replace("{encoded_account_id}", "nope"))).status == expected
    assert api.handle.sandbox.stats()["api_requests"] == 0  # not counted, like every admin request
