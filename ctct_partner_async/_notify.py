"""Partner webhook notifications without I/O: the body, the signature header, ``ts``, HMAC, RS256.

A notification is a pointer, not state: ``{"url": ".../partner/accounts/{id}/plan", "api_key": "...",
"event_type": "tier.increase"}``. v3 signs it with a detached JWS (RFC 7515 with RFC 7797) in
``X-CTCT-WEBHOOK-SIG``: ``<protected>..<signature>``, the protected header ``{"alg": "RS256", "ts": <unix
time>, "b64": false, "crit": ["b64"]}``, the signing input the base64url header, a dot and the raw body.
v2 signs with ``x-ctct-hmac-sha256``: base64 of HMAC-SHA256(secret, raw body).

Every refusal is a :class:`NotificationError` whose message quotes nothing it was given: no body, no
signature, no key. The framing (header, ``b64``, ``crit``, ``ts``) is checked here; the RSA arithmetic is
jwcrypto's (the ``[webhooks]`` extra), imported only when a JWS is verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ._errors import NotificationError
from ._models import EventType, PartnerNotification

__all__ = [
    "HMAC_HEADER",
    "MAX_BODY",
    "SIGNATURE_HEADER",
    "SignedHeader",
    "check_ts",
    "header_value",
    "hmac_signature",
    "load_rsa_keys",
    "parse_body",
    "parse_signature",
    "require_jwcrypto",
    "verify_hmac",
    "verify_rs256",
]

SIGNATURE_HEADER = "X-CTCT-WEBHOOK-SIG"
HMAC_HEADER = "x-ctct-hmac-sha256"
MAX_BODY = 64 * 1024  # the documented body is three short strings
MAX_URL = 2048
MAX_EVENT_TYPE = 100
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_ACCOUNT_PATH = re.compile(r"/partner/accounts/([A-Za-z0-9_\-]+)(?:/|$)")
_UNDERSTOOD_CRIT = frozenset({"b64"})
INSTALL_HINT = "verifying v3 webhook signatures needs jwcrypto: pip install 'ctct-partner-async[webhooks]'"


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """``name``'s value in ``headers``, whatever the case of its keys (a plain ``dict`` too)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, found in headers.items():
        if key.lower() == wanted:
            return found
    return None


# -- the body -------------------------------------------------------------------------------------------
def _malformed(rule: str) -> NotificationError:
    return NotificationError("malformed", f"the notification body is not the documented JSON: {rule}")


def _text(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _malformed(f"{name} must be a non-empty string")
    if len(value) > limit or not value.isprintable():
        raise _malformed(f"{name} must be at most {limit} printable characters")
    return value


def _utf8(text: str) -> bytes:
    """``text`` as bytes, lone surrogates (JSON ``\ud800``, a header aiohttp decoded) included."""
    return text.encode("utf-8", "surrogatepass")


def account_id_of(url: str) -> str | None:
    """The encoded account id a notification's ``url`` names (``.../partner/accounts/{id}/...``)."""
    found = _ACCOUNT_PATH.search(urlsplit(url).path)
    return found.group(1) if found else None


def parse_body(body: bytes, *, api_key: str | None = None) -> PartnerNotification:
    """The notification in ``body``; ``NotificationError`` (``malformed``, or ``wrong_api_key`` when
    ``api_key`` is given and the body names another key or none)."""
    if len(body) > MAX_BODY:
        raise _malformed(f"more than {MAX_BODY} bytes")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _malformed("not UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise _malformed("not a JSON object")
    url = _text(document, "url", MAX_URL)
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed IPv6 host, a host that breaks NFKC normalisation
        raise _malformed("url must be an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _malformed("url must be an http(s) URL")
    event_type = _text(document, "event_type", MAX_EVENT_TYPE)
    named_key = document.get("api_key")
    if named_key is not None and not isinstance(named_key, str):
        raise _malformed("api_key must be a string")
    if api_key is not None and (
        named_key is None or not hmac.compare_digest(_utf8(named_key), _utf8(api_key))
    ):
        raise NotificationError("wrong_api_key", "the notification is not for this receiver's API key")
    return PartnerNotification(
        event_type=event_type,
        url=url,
        account_id=account_id_of(url),
        topic=EventType.TOPICS.get(event_type),
        api_key=named_key,
    )


# -- v2: HMAC-SHA256 --------------------------------------------------------------------------------------
def hmac_signature(secret: bytes, body: bytes) -> str:
    """The ``x-ctct-hmac-sha256`` value for ``body``: base64 of HMAC-SHA256(secret, body)."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode("ascii")


def verify_hmac(secret: bytes, headers: Mapping[str, str], body: bytes) -> None:
    """``NotificationError`` unless ``headers`` carry the body's HMAC under ``secret``."""
    given = header_value(headers, HMAC_HEADER)
    if not given:
        raise NotificationError("missing_signature", f"no {HMAC_HEADER} header")
    if not hmac.compare_digest(_utf8(given.strip()), hmac_signature(secret, body).encode()):
        raise NotificationError("bad_signature", f"the {HMAC_HEADER} signature does not match the body")


# -- v3: detached JWS, RS256 ------------------------------------------------------------------------------
class SignedHeader:
    """The parts of a checked ``X-CTCT-WEBHOOK-SIG`` value: the base64url protected header as sent, its
    ``ts`` and the signature bytes."""

    __slots__ = ("protected", "signature", "ts")

    def __init__(self, protected: str, ts: int, signature: bytes) -> None:
        self.protected = protected
        self.ts = ts
        self.signature = signature

    def signing_input(self, body: bytes) -> bytes:
        """RFC 7797 with ``b64: false``: the header as sent, a dot, the raw body."""
        return self.protected.encode("ascii") + b"." + body


def _b64url(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _bad(rule: str) -> NotificationError:
    return NotificationError("bad_signature", f"the {SIGNATURE_HEADER} header is refused: {rule}")


def parse_signature(headers: Mapping[str, str]) -> SignedHeader:
    """The checked signature header: compact and detached, RS256, ``b64: false`` marked critical, an
    integer ``ts``, no critical parameter but ``b64``; ``NotificationError`` otherwise."""
    value = header_value(headers, SIGNATURE_HEADER)
    if not value:
        raise NotificationError("missing_signature", f"no {SIGNATURE_HEADER} header")
    parts = value.strip().split(".")
    if len(parts) != 3 or parts[1] != "":
        raise _bad("not a detached compact JWS (<header>..<signature>)")
    try:
        protected = json.loads(_b64url(parts[0]))
        signature = _b64url(parts[2])
    except (ValueError, UnicodeDecodeError, binascii.Error, RecursionError):
        raise _bad("not base64url JSON") from None
    if not isinstance(protected, dict):
        raise _bad("the protected header is not a JSON object")
    if protected.get("alg") != "RS256":
        raise _bad("alg must be RS256")
    if protected.get("b64") is not False:
        raise _bad("b64 must be false (the body is signed as sent)")
    crit = protected.get("crit")
    if not isinstance(crit, list) or "b64" not in crit:
        raise _bad('crit must list "b64"')
    if not all(isinstance(name, str) and name in _UNDERSTOOD_CRIT for name in crit):
        raise _bad("crit names a parameter this receiver does not understand")
    ts = protected.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or ts != ts or abs(ts) > 1e11:
        raise _bad("ts must be a unix time")
    return SignedHeader(parts[0], int(ts), signature)


def check_ts(ts: float, now: float, tolerance: float) -> None:
    """``NotificationError`` if ``ts`` is more than ``tolerance`` seconds before or after ``now``."""
    if ts < now - tolerance:
        raise NotificationError("stale", f"the signature's ts is more than {tolerance:g} s old")
    if ts > now + tolerance:
        raise NotificationError("future", f"the signature's ts is more than {tolerance:g} s ahead")


def require_jwcrypto() -> None:
    """``ImportError`` with the install hint when jwcrypto is missing."""
    try:
        import jwcrypto.jwk  # noqa: F401 - the optional extra
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc


def load_rsa_keys(document: object) -> list[Any]:
    """The RS256 verification keys of a JWKS document (``{"keys": [...]}``): RSA keys whose ``use`` and
    ``alg``, when given, allow RS256 signatures; others and broken ones are skipped. ``ValueError`` if
    it is not a JWKS."""
    from jwcrypto.jwk import JWK  # the optional extra

    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('a JWKS is a JSON object with a "keys" array')  # noqa: TRY004 - one error type
    keys = []
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
            continue
        try:
            keys.append(JWK(**entry))
        except Exception:  # noqa: S112 - jwcrypto raises several types for a broken key
            continue
    return keys


def verify_rs256(keys: Iterable[Any], signed: SignedHeader, body: bytes) -> bool:
    """Whether one of ``keys`` (jwcrypto JWKs) signed ``body`` under ``signed``: every key is tried, as
    the documented header has no ``kid``."""
    from jwcrypto.jwa import JWA  # the optional extra

    algorithm = JWA.instantiate_alg("RS256", use="sig")
    data = signed.signing_input(body)
    for key in keys:
        try:
            algorithm.verify(key, data, signed.signature)
        except Exception:  # noqa: S112 - InvalidSignature, or a key that can't verify
            continue
        return True
    return False
