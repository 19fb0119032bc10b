"""The token endpoint and the credentials every API call needs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from ctct_partner_async.sandbox.tokens import TokenIssuer, b64url
from tests.sandbox.conftest import StartSandbox
from tests.sandbox.support import API_KEY, Api, FakeClock, basic


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


async def token_post(api: Api, data: dict[str, str], authorization: str | None = None) -> Any:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with api.session.post(api.handle.token_url, data=data, headers=headers) as response:
        return response.status, await response.json()


async def test_token_answer_shape_and_claims(start_sandbox: StartSandbox, clock: FakeClock) -> None:
    """A good request gets {access_token, expires_in, token_type} and a JWT with exp/iat/client_id/scope."""
    api = await start_sandbox(token_ttl=1800)
    result = await api.fetch_token(scope="v3api/general.partner")
    assert result.status == 200
    assert set(result.body) == {"access_token", "expires_in", "token_type"}
    assert result.body["expires_in"] == 1800
    assert result.body["token_type"] == "Bearer"
    payload = claims(result.body["access_token"])
    assert payload["client_id"] == "sandbox-client"
    assert payload["scope"] == "v3api/general.partner"
    assert payload["iat"] == int(clock.now)
    assert payload["exp"] - payload["iat"] == 1800
    header = json.loads(base64.urlsafe_b64decode(result.body["access_token"].split(".")[0] + "=="))
    assert header["alg"] == "HS256"


async def test_token_signature_verifies_with_the_sandbox_key(api: Api) -> None:
    """The token is HMAC-SHA256 signed: the sandbox's own issuer verifies it and a tampered one fails."""
    token = await api.token()
    issuer = api.handle.sandbox.tokens
    assert issuer.decode(token)["client_id"] == "sandbox-client"
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload[:-2]}AA.{signature}"
    with pytest.raises(ValueError):
        issuer.decode(forged)


def test_issuer_signature_is_hmac_sha256() -> None:
    """The signature is base64url(HMAC-SHA256(key, header.payload))."""
    issuer = TokenIssuer(key=b"k" * 32)
    token = issuer.issue("c", 100.0, 60)
    header, payload, signature = token.split(".")
    expected = b64url(hmac.new(b"k" * 32, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert signature == expected
    assert issuer.check(token, 159.0) is None
    assert issuer.check(token, 160.0) == "The access token has expired"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        basic("sandbox-client", "wrong"),
        basic("someone-else", "sandbox-secret"),
        "Basic !!!",
        "Bearer x",
    ],
)
async def test_bad_client_credentials_are_invalid_client(api: Api, authorization: str | None) -> None:
    """Missing or wrong Basic credentials get 401 {"error": "invalid_client"}."""
    status, body = await token_post(api, {"grant_type": "client_credentials"}, authorization)
    assert (status, body["error"]) == (401, "invalid_client")


@pytest.mark.parametrize("data", [{}, {"grant_type": "password"}, {"grant_type": "authorization_code"}])
async def test_wrong_grant_type_is_unsupported(api: Api, data: dict[str, str]) -> None:
    """A missing or other grant_type gets 400 unsupported_grant_type."""
    status, body = await token_post(api, data, basic())
    assert (status, body["error"]) == (400, "unsupported_grant_type")


async def test_token_endpoint_limits_one_per_second(start_sandbox: StartSandbox, clock: FakeClock) -> None:
    """A second token request within a second is a 429 throttled; a second later it succeeds."""
    api = await start_sandbox(token_rate_limit=1)
    assert (await api.fetch_token()).status == 200
    clock.advance(0.5)
    second = await api.fetch_token()
    assert (second.status, second.body["error_key"]) == (429, "throttled")
    clock.advance(0.5)
    assert (await api.fetch_token()).status == 200
    assert api.handle.sandbox.stats()["token_requests"] == 3


async def test_every_token_request_is_counted(api: Api) -> None:
    """token_requests counts failed requests too; tokens_issued only the good ones."""
    await token_post(api, {"grant_type": "client_credentials"}, basic("x", "y"))
    await token_post(api, {}, basic())
    await api.fetch_token()
    stats = api.handle.sandbox.stats()
    assert stats["token_requests"] == 3
    assert stats["tokens_issued"] == 1
    assert stats["token_responses_by_status"] == {"401": 1, "400": 1, "200": 1}


async def test_raw_and_bearer_tokens_are_both_accepted(api: Api) -> None:
    """Authorization may be the raw JWT (vendor examples) or Bearer <jwt>."""
    token = await api.token()
    for value in (token, f"Bearer {token}", f"bearer {token}"):
        result = await api.call("GET", "/partner/accounts", headers={"Authorization": value})
        assert result.status == 200, value


@pytest.mark.parametrize(
    ("headers", "message_part"),
    [
        ({"x-api-key": "wrong-key"}, "x-api-key"),
        ({"Authorization": ""}, "missing"),
        ({"Authorization": "Bearer not.a.token"}, "malformed"),
    ],
)
async def test_bad_api_credentials_get_401_object(
    api: Api, headers: dict[str, str], message_part: str
) -> None:
    """A wrong API key, no token or an unknown token get 401 {"error_key": "unauthorized", ...}."""
    result = await api.call("GET", "/partner/accounts", headers=headers)
    assert result.status == 401
    assert result.body["error_key"] == "unauthorized"
    assert message_part in result.body["error_message"]


async def test_missing_api_key_gets_401(api: Api) -> None:
    """A call without x-api-key is refused even with a good token."""
    token = await api.token()
    async with api.session.get(
        api.handle.base_url + "/partner/accounts", headers={"Authorization": token}
    ) as r:
        assert r.status == 401
        assert (await r.json())["error_key"] == "unauthorized"


async def test_expired_token_gets_401(start_sandbox: StartSandbox, clock: FakeClock) -> None:
    """A token is good until exp by the sandbox clock and 401 from then on."""
    api = await start_sandbox(token_ttl=60)
    assert (await api.call("GET", "/partner/accounts")).status == 200
    clock.advance(59)
    assert (await api.call("GET", "/partner/accounts")).status == 200
    clock.advance(1)
    result = await api.call("GET", "/partner/accounts")
    assert (result.status, result.body["error_key"]) == (401, "unauthorized")
    assert "expired" in result.body["error_message"]


async def test_revoked_tokens_get_401_and_a_new_token_works(api: Api) -> None:
    """revoke_tokens() invalidates every issued token; a freshly issued one is accepted."""
    assert (await api.call("GET", "/partner/accounts")).status == 200
    assert api.handle.sandbox.revoke_tokens() == 1
    result = await api.call("GET", "/partner/accounts")
    assert result.status == 401
    assert "revoked" in result.body["error_message"]
    fresh = (await api.fetch_token()).body["access_token"]
    assert (await api.call("GET", "/partner/accounts", headers={"Authorization": fresh})).status == 200


async def test_custom_credentials_are_enforced(start_sandbox: StartSandbox) -> None:
    """Configured client id, secret and API key replace the defaults."""
    api = await start_sandbox(client_id="cid-1", client_secret="sec-1", api_key="key-1")
    status, _ = await token_post(api, {"grant_type": "client_credentials"}, basic())
    assert status == 401
    status, body = await token_post(api, {"grant_type": "client_credentials"}, basic("cid-1", "sec-1"))
    assert status == 200
    headers = {"x-api-key": "key-1", "Authorization": body["access_token"]}
    async with api.session.get(api.handle.base_url + "/partner/accounts", headers=headers) as response:
        assert response.status == 200
    headers["x-api-key"] = API_KEY
    async with api.session.get(api.handle.base_url + "/partner/accounts", headers=headers) as response:
        assert response.status == 401


async def test_bad_scope_is_refused(api: Api) -> None:
    """A scope other than v3api/general.partner gets 400 invalid_scope."""
    result = await api.fetch_token(scope="v3api/everything")
    assert (result.status, result.body["error"]) == (400, "invalid_scope")
