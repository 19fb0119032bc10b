"""What a handler answers: a :class:`Reply` (status and JSON payload) and the error shapes the API uses.

Validation, 404, 409, 415 and 5xx errors are arrays ``[{"error_key", "error_message"}]``; auth failures and
429s are a single object, as the vendor documents.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from aiohttp import web

JSON = "application/json"
VALIDATION = "validation_error"
NOT_FOUND = "not_found"


class Reply(NamedTuple):
    """A status, a payload (JSON value, or text when ``content_type`` is not JSON; ``None``: no body)."""

    status: int
    payload: object = None
    fault: str | None = None
    content_type: str = JSON


class Refusal(Exception):  # noqa: N818 - a refusal is an answer, not a failure of the sandbox
    """Raised by a handler to answer with ``reply`` instead."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def error_list(status: int, key: str, *messages: str, fault: str | None = None) -> Reply:
    """The array error shape, one entry per message."""
    return Reply(status, [{"error_key": key, "error_message": m} for m in messages], fault)


def error_object(status: int, key: str, message: str, fault: str | None = None) -> Reply:
    """The single-object error shape (auth failures, 429s)."""
    return Reply(status, {"error_key": key, "error_message": message}, fault)


def invalid(problems: list[str]) -> Refusal:
    """A 400 listing every validation problem."""
    return Refusal(error_list(400, VALIDATION, *problems))


def not_found(what: str) -> Refusal:
    """A 404 for an unknown resource."""
    return Refusal(error_list(404, NOT_FOUND, f"{what} was not found"))


def first_error_key(payload: object) -> str | None:
    """The ``error_key`` (or OAuth ``error``) of an error payload, for the request log."""
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]
    if isinstance(payload, dict):
        key = payload.get("error_key", payload.get("error"))
        return key if isinstance(key, str) else None
    return None


def render(reply: Reply) -> web.Response:
    """The aiohttp response for a reply."""
    if reply.payload is None:
        return web.Response(status=reply.status)
    payload = reply.payload
    body = json.dumps(payload).encode() if reply.content_type == JSON else str(payload).encode()
    return web.Response(body=body, status=reply.status, content_type=reply.content_type)
