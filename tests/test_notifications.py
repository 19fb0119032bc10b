"""Webhook signatures and bodies: samples signed in the test with generated RSA keys, served as a JWKS on
loopback, each accepted or refused as it should be."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ctct_partner_async import EventType, FakeClock, NotificationError, ValidationError, WebhookTopic
from ctct_partner_async.notifications import HmacVerifier, JwsVerifier, parse_notification

API_KEY = "partner-api-key-0123456789"
BODY = json.dumps({
    "url": "https://api.cc.email/v3/partner/accounts/a07e1my9tbw0/plan", "api_key": API_KEY,
    "event_type": "tier.increase",
}).encode()  # fmt: skip
NOW = 1_800_000_000


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: rsa.RSAPrivateKey, **extra: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def as_bytes(n: int) -> bytes:
        return n.to_bytes((n.bit_length() + 7) // 8, "big")

    return {"kty": "RSA", "n": b64url(as_bytes(numbers.n)), "e": b64url(as_bytes(numbers.e)), **extra}


def sign(key: rsa.RSAPrivateKey, body: bytes, **header: Any) -> str:
    protected = {"alg": "RS256", "ts": NOW, "b64": False, "crit": ["b64"]}
    protected.update(header)
    head = b64url(json.dumps({k: v for k, v in protected.items() if v is not None}).encode())
    signature = key.sign(head.encode() + b"." + body, padding.PKCS1v15(), hashes.SHA256())
    return f"{head}..{b64url(signature)}"


KEY_A = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_B = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Jwks:
    """A JWKS endpoint on loopback whose keys the test changes, counting its fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, str]] = [public_jwk(KEY_A)]
        self.fetches = 0
        self.status = 200

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.status != 200:
            return web.Response(status=self.status)
        return web.json_response({"keys": self.keys})


@pytest.fixture
async def jwks() -> AsyncIterator[tuple[Jwks, str]]:
    endpoint = Jwks()
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", endpoint.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield endpoint, str(server.make_url("/.well-known/jwks.json"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_000.0, wall_start=float(NOW))


async def check(url: str, clock: FakeClock, headers: dict[str, str], body: bytes = BODY, **kw: Any) -> Any:
    async with JwsVerifier(url, clock=clock) as verifier:
        return await parse_notification(headers, body, verifier=verifier, **kw)


async def test_a_valid_signature_with_a_one_key_jwks_without_kid_is_accepted(
    jwks: tuple[Jwks, str], clock: FakeClock
) -> None:
    """The documented header (no kid) against a one-key set: the notification and its parsed fields."""
    got = await check(jwks[1], clock, {"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY)}, api_key=API_KEY)
    assert got.event_type == EventType.TIER_INCREASE and got.topic is WebhookTopic.BILLING_TIER_UPGRADE
    assert got.account_id == "a07e1my9tbw0" and got.api_key == API_KEY
    assert API_KEY not in repr(got)


async def test_every_key_of_a_two_key_jwks_is_tried(jwks: tuple[Jwks, str], clock: FakeClock) -> None:
    """With two keys and no kid, a body signed by the second key verifies (lower-case header name too)."""
    jwks[0].keys = [public_jwk(KEY_A, kid="a"), public_jwk(KEY_B, kid="b")]
    got = await check(jwks[1], clock, {"x-ctct-webhook-sig": sign(KEY_B, BODY)})
    assert got.url.endswith("/plan")


def _refusals() -> list[Any]:
    tampered = BODY.replace(b"tier.increase", b"tier.decrease")
    return [
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY)}, tampered), "bad_signature", id="tampered"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": sign(KEY_B, BODY)}, BODY), "bad_signature", id="wrong-key"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY, b64=True)}, BODY), "bad_signature",
                     id="b64-true"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY, crit=None)}, BODY), "bad_signature",
                     id="no-crit"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY, crit=["b64", "exp"])}, BODY),
                     "bad_signature", id="unknown-crit"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY, alg="none")}, BODY), "bad_signature",
                     id="alg-none"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY, alg="HS256")}, BODY), "bad_signature",
                     id="alg-hs256"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY, ts=NOW - 3901)}, BODY), "stale",
                     id="stale-ts"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY, ts=NOW + 3901)}, BODY), "future",
                     id="future-ts"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY, ts="soon")}, BODY), "bad_signature",
                     id="ts-not-a-number"),
        pytest.param(lambda: ({}, BODY), "missing_signature", id="no-header"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": "e30.e30.e30"}, BODY), "bad_signature", id="not-detached"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": '{"signature": "x"}'}, BODY), "bad_signature",
                     id="json-serialization"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, b"[1]")}, b"[1]"), "malformed", id="not-an-object"),
        pytest.param(lambda: ({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, b"\xff")}, b"\xff"), "malformed", id="not-utf8"),
    ]  # fmt: skip


@pytest.mark.parametrize(("make", "reason"), _refusals())
async def test_a_bad_delivery_is_refused_with_its_reason(
    jwks: tuple[Jwks, str], clock: FakeClock, make: Callable[[], tuple[dict[str, str], bytes]], reason: str
) -> None:
    """Tampered body, wrong key, b64 true, missing or unknown crit, alg none or HS256, stale or future ts,
    no header, a non-detached or JSON JWS, a body that is not a JSON object: each refused, saying why,
    with the status a receiver answers."""
    headers, body = make()
    with pytest.raises(NotificationError) as info:
        await check(jwks[1], clock, headers, body)
    assert info.value.reason == reason
    assert info.value.status == (400 if reason == "malformed" else 401)
    assert API_KEY not in str(info.value) and headers.get("X-CTCT-WEBHOOK-SIG", "\0") not in str(info.value)


async def test_ts_within_the_tolerance_either_way_is_accepted(
    jwks: tuple[Jwks, str], clock: FakeClock
) -> None:
    """An hour-old ts (a retry of the sender's hour) and one a minute ahead are both accepted."""
    for ts in (NOW - 3600, NOW + 60):
        await check(jwks[1], clock, {"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY, ts=ts)})


async def test_a_body_naming_another_api_key_is_refused(jwks: tuple[Jwks, str], clock: FakeClock) -> None:
    """With api_key= the body must name that key: another one, or none, is a 403 that quotes neither."""
    headers = {"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY)}
    with pytest.raises(NotificationError) as info:
        await check(jwks[1], clock, headers, api_key="another-partners-key")
    assert (info.value.reason, info.value.status) == ("wrong_api_key", 403)
    assert API_KEY not in str(info.value) and "another-partners-key" not in str(info.value)
    keyless = json.dumps({"url": "https://x.example/v3/partner/accounts/a1/plan", "event_type": "x"}).encode()
    with pytest.raises(NotificationError, match="not for this receiver"):
        await check(jwks[1], clock, {"X-CTCT-WEBHOOK-SIG": sign(KEY_A, keyless)}, keyless, api_key=API_KEY)


async def test_an_unknown_key_refetches_the_jwks_at_most_once_a_minute(
    jwks: tuple[Jwks, str], clock: FakeClock
) -> None:
    """A rotated key is picked up by one refetch; forgeries inside the minute cost no further fetch."""
    endpoint, url = jwks
    async with JwsVerifier(url, clock=clock) as verifier:
        await parse_notification({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY)}, BODY, verifier=verifier)
        assert endpoint.fetches == 1
        endpoint.keys = [public_jwk(KEY_B)]
        for _ in range(3):
            with pytest.raises(NotificationError):
                await parse_notification({"X-CTCT-WEBHOOK-SIG": sign(KEY_B, BODY)}, BODY, verifier=verifier)
        assert endpoint.fetches == 1  # the first fetch was less than a minute ago
        clock.advance(61)
        await parse_notification({"X-CTCT-WEBHOOK-SIG": sign(KEY_B, BODY)}, BODY, verifier=verifier)
        assert endpoint.fetches == 2


async def test_jwks_unavailable_is_a_503_and_old_keys_outlive_a_failed_refresh(
    jwks: tuple[Jwks, str], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """No keys yet and the JWKS down: 503 ``keys_unavailable`` (the sender retries). Keys held and the
    refresh failing: the old keys still verify, with one warning."""
    endpoint, url = jwks
    endpoint.status = 500
    async with JwsVerifier(url, clock=clock, jwks_ttl=100) as verifier:
        with pytest.raises(NotificationError) as info:
            await parse_notification({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY)}, BODY, verifier=verifier)
        assert (info.value.reason, info.value.status) == ("keys_unavailable", 503)
        endpoint.status = 200
        await parse_notification({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY)}, BODY, verifier=verifier)
        endpoint.status = 500
        clock.advance(101)
        with caplog.at_level(logging.WARNING, "ctct_partner_async.notifications"):
            await parse_notification({"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY)}, BODY, verifier=verifier)
        assert "using the keys fetched before" in caplog.text


def test_a_plain_http_jwks_url_off_loopback_is_refused() -> None:
    """Like every other URL of the SDK: https, or http only on a loopback host."""
    with pytest.raises(ValidationError, match="jwks_url"):
        JwsVerifier("http://keys.example/jwks.json")
    with pytest.raises(ValidationError, match="tolerance"):
        JwsVerifier("https://keys.example/jwks.json", tolerance=0)


async def test_hmac_valid_and_invalid() -> None:
    """v2: base64 HMAC-SHA256 of the raw body under the secret; any other value, or none, is refused."""
    secret = "v2-shared-secret"
    good = base64.b64encode(hmac.new(secret.encode(), BODY, hashlib.sha256).digest()).decode()
    verifier = HmacVerifier(secret)
    assert secret not in repr(verifier)
    got = await parse_notification({"X-Ctct-Hmac-Sha256": good}, BODY, verifier=verifier)
    assert got.topic is WebhookTopic.BILLING_TIER_UPGRADE
    for headers, reason in (
        ({"x-ctct-hmac-sha256": good[:-4] + "AAA="}, "bad_signature"),
        ({}, "missing_signature"),
    ):
        with pytest.raises(NotificationError) as info:
            await parse_notification(headers, BODY, verifier=verifier)
        assert info.value.reason == reason and secret not in str(info.value)
    with pytest.raises(NotificationError, match="does not match"):
        await parse_notification({"x-ctct-hmac-sha256": good}, BODY + b" ", verifier=verifier)


async def test_without_a_verifier_the_api_key_is_required() -> None:
    """verifier=None needs api_key= (the body's key is then the only proof of origin)."""
    with pytest.raises(ValidationError, match="verifier"):
        await parse_notification({}, BODY, verifier=None)
    got = await parse_notification({}, BODY, verifier=None, api_key=API_KEY)
    assert got.account_id == "a07e1my9tbw0"


@pytest.mark.parametrize(
    ("document", "rule"),
    [
        ({"event_type": "tier.increase", "api_key": "k"}, "url"),
        ({"url": "ftp://x.example/a", "event_type": "tier.increase"}, "url"),
        ({"url": "https://x.example/v3/partner/accounts/a1/plan", "event_type": 7}, "event_type"),
        (
            {"url": "https://x.example/v3/partner/accounts/a1/plan", "event_type": "x", "api_key": 5},
            "api_key",
        ),
    ],
)
async def test_a_body_that_is_not_the_documented_json_is_malformed(
    document: dict[str, object], rule: str
) -> None:
    """Each field's rule, named in the 400's message."""
    body = json.dumps(document).encode()
    with pytest.raises(NotificationError, match=rule) as info:
        await parse_notification({}, body, verifier=None, api_key="k")
    assert info.value.status == 400


async def test_an_unknown_event_type_and_a_url_naming_no_account_still_parse() -> None:
    """event_type is an open string (topic None); a url without an account gives account_id None."""
    body = json.dumps(
        {"url": "https://x.example/v3/partner/other", "event_type": "new.thing", "api_key": "k"}
    )
    got = await parse_notification({}, body.encode(), verifier=None, api_key="k")
    assert (got.topic, got.account_id, got.event_type) == (None, None, "new.thing")


@pytest.mark.parametrize(
    "body",
    [
        b'{"url": "http://[x/partner/accounts/1", "event_type": "a", "api_key": "k"}',
        '{"url": "https://h\uff0fx/partner/accounts/1", "event_type": "a", "api_key": "k"}'.encode(),
        b'{"url": "https://x.example/v3/partner/accounts/a1/plan", "event_type": "a", "api_key": "\\ud800"}',
    ],
    ids=["bad-ipv6-host", "nfkc-breaking-host", "lone-surrogate-key"],
)
async def test_a_hostile_body_is_refused_never_a_crash(body: bytes) -> None:
    """A url urlsplit can't split, or an api_key holding a lone surrogate: a NotificationError (400, 403)."""
    with pytest.raises(NotificationError) as info:
        await parse_notification({}, body, verifier=None, api_key="k")
    assert info.value.status in (400, 403)


async def test_an_hmac_header_that_is_not_utf8_is_refused() -> None:
    """aiohttp hands on undecodable header bytes as surrogates: a 401, not a crash."""
    with pytest.raises(NotificationError) as info:
        await parse_notification({"x-ctct-hmac-sha256": "\udcff"}, BODY, verifier=HmacVerifier("s"))
    assert info.value.reason == "bad_signature"


async def test_a_jwks_arriving_in_pieces_is_read_whole(clock: FakeClock) -> None:
    """A JWKS written in two chunks, apart in time, is read to its end."""
    document = json.dumps({"keys": [public_jwk(KEY_A)]}).encode()

    async def slow(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(headers={"Content-Type": "application/json"})
        await answer.prepare(request)
        await answer.write(document[:100])
        await asyncio.sleep(0.05)
        await answer.write(document[100:])
        await answer.write_eof()
        return answer

    app = web.Application()
    app.router.add_get("/jwks", slow)
    async with TestServer(app, host="127.0.0.1") as server:
        await check(str(server.make_url("/jwks")), clock, {"X-CTCT-WEBHOOK-SIG": sign(KEY_A, BODY)})
