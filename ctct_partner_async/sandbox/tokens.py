"""JWT-shaped access tokens: HS256 over a per-sandbox random key, remembered in a dict of issued tokens.

The dict is the fast path of every API call: a token the sandbox issued and has not revoked is found in
one lookup and checked against its ``exp`` by the injected clock. A token that is not in the dict is
refused; only then is it decoded, to say *why* (malformed, bad signature, revoked or unknown).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping

SCOPE = "v3api/general.partner"
ISSUER = "ctct-partner-sandbox"
_HEADER = {"alg": "HS256", "typ": "JWT", "kid": "sandbox"}


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWT uses."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url`; ``ValueError`` on bad input."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("bad base64url") from exc


def _encode_part(value: Mapping[str, object]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


class TokenIssuer:
    """Issues, checks and revokes the sandbox's access tokens."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._header = _encode_part(_HEADER)
        self._issued: dict[str, int] = {}

    @property
    def active(self) -> int:
        """How many issued tokens are remembered (not revoked; expired ones linger until pruned)."""
        return len(self._issued)

    def issue(self, client_id: str, now: float, ttl: float) -> str:
        """A new signed token for ``client_id``, valid until ``int(now + ttl)``."""
        self._prune(now)
        iat = int(now)
        payload = {
            "iss": ISSUER,
            "sub": client_id,
            "client_id": client_id,
            "scope": SCOPE,
            "token_use": "access",
            "iat": iat,
            "exp": int(now + ttl),
            "jti": secrets.token_hex(8),
        }
        signing_input = f"{self._header}.{_encode_part(payload)}"
        token = f"{signing_input}.{self._sign(signing_input)}"
        self._issued[token] = int(now + ttl)
        return token

    def check(self, token: str, now: float) -> str | None:
        """``None`` if ``token`` is good at ``now``, else why it is not."""
        exp = self._issued.get(token)
        if exp is None:
            return self._explain_unknown(token, now)
        if now >= exp:
            return "The access token has expired"
        return None

    def revoke_all(self) -> int:
        """Forget every issued token; return how many were forgotten."""
        count = len(self._issued)
        self._issued.clear()
        return count

    def decode(self, token: str) -> dict[str, object]:
        """The verified payload of a token this issuer signed; ``ValueError`` otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            raise ValueError("not a JWT")
        if not hmac.compare_digest(self._sign(f"{parts[0]}.{parts[1]}"), parts[2]):
            raise ValueError("bad signature")
        payload = json.loads(b64url_decode(parts[1]))
        if not isinstance(payload, dict):
            raise ValueError("payload is not an object")  # noqa: TRY004 - one error type for bad tokens
        return payload

    def _explain_unknown(self, token: str, now: float) -> str:
        try:
            payload = self.decode(token)
        except ValueError:
            return "The access token is malformed or its signature is invalid"
        exp = payload.get("exp")
        if isinstance(exp, int) and now >= exp:
            return "The access token has expired"
        return "The access token has been revoked"

    def _sign(self, signing_input: str) -> str:
        return b64url(hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest())

    def _prune(self, now: float) -> None:
        if len(self._issued) > 64:
            for token in [token for token, exp in self._issued.items() if exp <= now]:
                del self._issued[token]
