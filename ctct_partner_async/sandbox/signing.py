"""How the sandbox signs its webhook deliveries, as v3 documents it, and the JWKS that checks them.

``X-CTCT-WEBHOOK-SIG`` is a detached JWS (RFC 7515 with RFC 7797): ``<header>..<signature>``, the
protected header ``{"alg": "RS256", "ts": <unix time of the attempt>, "b64": false, "crit": ["b64"]}``,
signed over the base64url header, a dot and the raw body. The header has no ``kid`` (the documented one
has none); the JWKS gives each key one. The RSA key (2048 bits) is made on first use, so a sandbox that
sends nothing pays nothing. Written against ``cryptography`` directly, not the client's JOSE library, so a
framing bug can't sit on both sides. ``x-ctct-hmac-sha256`` (v2) is base64 of HMAC-SHA256(secret, body).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

SIGNATURE_HEADER = "X-CTCT-WEBHOOK-SIG"
HMAC_HEADER = "x-ctct-hmac-sha256"


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8 or 1, "big")


def hmac_header(secret: str, body: bytes) -> str:
    """The v2 signature of ``body``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode("ascii")


class WebhookSigner:
    """The sandbox's signing key (made on first use; ``rotate()`` makes a new one and keeps the old one in
    the JWKS) and the JWKS it publishes."""

    def __init__(self) -> None:
        self._keys: list[Any] = []  # newest first

    @staticmethod
    def available() -> bool:
        """Whether ``cryptography`` (which the ``[webhooks]`` extra brings) is installed."""
        try:
            import cryptography.hazmat.primitives.asymmetric.rsa  # noqa: F401
        except ImportError:
            return False
        return True

    def _current(self) -> Any:
        if not self._keys:
            self.rotate()
        return self._keys[0]

    def rotate(self) -> None:
        """Sign with a new key from now on; the JWKS lists it first, then the old ones."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._keys.insert(0, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwks(self) -> dict[str, object]:
        """``{"keys": [...]}``: the public keys, RSA, ``use`` sig, ``alg`` RS256, each with a ``kid``."""
        self._current()
        keys = []
        for key in self._keys:
            numbers = key.public_key().public_numbers()
            n, e = b64url(_int_bytes(numbers.n)), b64url(_int_bytes(numbers.e))
            kid = b64url(hashlib.sha256(f"{e}.{n}".encode()).digest()[:12])
            keys.append({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e})
        return {"keys": keys}

    def sign(self, body: bytes, ts: int) -> str:
        """The ``X-CTCT-WEBHOOK-SIG`` value for ``body`` at unix time ``ts``."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header = {"alg": "RS256", "ts": ts, "b64": False, "crit": ["b64"]}
        protected = b64url(json.dumps(header, separators=(",", ":")).encode())
        signature = self._current().sign(
            protected.encode() + b"." + body, padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{protected}..{b64url(signature)}"
