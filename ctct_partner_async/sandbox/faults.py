"""Deciding which scripted fault strikes, from one ``random.Random(seed)``, and what each one answers.

Draw order per API request (a draw happens only for a fault whose probability is above 0 and whose
operation is selected by ``fault_operations``): ``throttle_429``, ``error_403``, ``error_406``,
``error_500``, ``error_502``, ``error_504`` before the handler (nothing committed); ``create_503`` inside a
create; ``drop_after_commit`` after a successful state change. The same seed and the same request order
give the same faults.

What the client sees: 429 ``throttled`` (the real body); 403 ``forbidden`` and 406 ``not_acceptable`` error
arrays (for testing how a client treats them: never retried); 500 an error array; 502 an HTML page, as a proxy
would send; 504 ``{"message": "Endpoint request timed out"}``, as an API gateway sends; a create 503
``[{"error_key": "service_unavailable", ...}]`` (the request is stored and carried out later).
"""

from __future__ import annotations

import random

from .config import Faults
from .limits import THROTTLED
from .replies import Reply, error_list, error_object

_BAD_GATEWAY_HTML = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)


def throttled(fault: str | None = None) -> Reply:
    """The per-second 429 answer."""
    return error_object(429, THROTTLED, "Too Many Requests", fault)


class FaultInjector:
    """Draws faults for requests according to the live :class:`Faults`."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self._rng = random.Random(seed)  # noqa: S311 - reproducible faults, not security

    def reseed(self, seed: int) -> None:
        """Start the draw sequence again."""
        self._rng.seed(seed)

    def hit(self, probability: float, operation: str) -> bool:
        """Whether a fault of ``probability`` strikes this ``operation`` (draws only when it could)."""
        if probability <= 0.0:
            return False
        selected = self.faults.fault_operations
        if selected and operation not in selected:
            return False
        return self._rng.random() < probability

    def before(self, operation: str) -> Reply | None:
        """A fault answered instead of running the handler, or ``None``."""
        f = self.faults
        if not (f.throttle_429 or f.error_403 or f.error_406 or f.error_500 or f.error_502 or f.error_504):
            return None  # the usual case: no draw, no work
        if self.hit(f.throttle_429, operation):
            return throttled("throttle_429")
        if self.hit(f.error_403, operation):
            return error_list(403, "forbidden", "This API key is not allowed to call this endpoint.",
                              fault="error_403")  # fmt: skip
        if self.hit(f.error_406, operation):
            return error_list(406, "not_acceptable", "The requested media type is not available.",
                              fault="error_406")  # fmt: skip
        if self.hit(f.error_500, operation):
            return error_list(500, "internal_error", "There was a problem with our internal service.",
                              fault="error_500")  # fmt: skip
        if self.hit(f.error_502, operation):
            return Reply(502, _BAD_GATEWAY_HTML, "error_502", "text/html")
        if self.hit(f.error_504, operation):
            return Reply(504, {"message": "Endpoint request timed out"}, "error_504")
        return None

    def defer_create(self, operation: str) -> bool:
        """Whether this create answers 503 and is carried out later."""
        return self.hit(self.faults.create_503, operation)

    def drop(self, operation: str) -> bool:
        """Whether to drop the connection after this successful state change."""
        return self.hit(self.faults.drop_after_commit, operation)
