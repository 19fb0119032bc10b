"""The sandbox answers what the real API would to odd input, never a 500: other scripts' digits, numbers
past Python's int-string limit, deep nesting, a missing ``state_code``; 403 and 406 on demand; JSON for
the router's own 404 and 405; and no traceback when a client hangs up mid-request."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from tests.sandbox.support import Api, provision

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("a number past the int-string limit", b'{"login_name": "big_number_1", "n": ' + b"9" * 5000 + b"}"),
        ("nesting deeper than the parser's recursion", b"[" * 100_000 + b"]" * 100_000),
        ("nesting inside an object", b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
    ],
)
async def test_bodies_that_break_a_naive_parser_are_400(api: Api, name: str, body: bytes) -> None:
    for method, path in (("POST", "/partner/accounts"), ("PUT", "/partner/accounts/a07e1abcdefgh/plan")):
        result = await api.call(method, path, data=body, headers=JSON)
        assert result.status == 400, (name, method, result.text)
        assert result.body[0]["error_key"] == "validation_error"


@pytest.mark.parametrize("limit", ["١٥", "٢٠", "1" * 5000, "00000000015"])
async def test_a_limit_in_other_digits_or_too_long_is_ignored(api: Api, limit: str) -> None:
    """Only ASCII digits count as a page size (Python's int() reads "١٥" as 15, the API would not); an
    overlong number falls back to the default rather than failing."""
    for i in range(55):
        await api.create_ok(f"limit_user_{i:03d}")
    result = await api.call("GET", "/partner/accounts", params={"limit": limit})
    assert result.status == 200 and len(result.body["site_owner_list"]) == 50


async def test_the_admin_request_log_limit_takes_only_ascii_digits(api: Api) -> None:
    session, url = api.session, api.handle.url + "/_sandbox/requests"
    for limit in ("١", "9" * 5000, "2"):
        async with session.get(url, params={"limit": limit}) as answer:
            assert answer.status == 200, await answer.text()


async def test_state_code_must_be_present_and_may_be_blank_outside_us_and_ca(api: Api) -> None:
    missing = await api.call("POST", "/partner/accounts", json_body=provision("no_state_gb", country_code="GB",
                                                                              state_code=...))  # fmt: skip
    assert missing.status == 400 and missing.body == [
        {"error_key": "validation_error", "error_message": "state_code is required"}
    ]
    blank = await api.call("POST", "/partner/accounts", json_body=provision("blank_state_gb", country_code="GB",
                                                                            state_code=""))  # fmt: skip
    assert blank.status == 201, blank.text
    us = await api.call("POST", "/partner/accounts", json_body=provision("blank_state_us", state_code=" "))
    assert us.status == 400 and [e["error_message"] for e in us.body] == [
        "state_code is required when country_code is US or CA"
    ]


@pytest.mark.parametrize(
    ("fault", "status", "key"), [("error_403", 403, "forbidden"), ("error_406", 406, "not_acceptable")]
)
async def test_403_and_406_come_from_a_fault(api: Api, fault: str, status: int, key: str) -> None:
    api.handle.sandbox.faults.update({fault: 1.0})
    result = await api.call("GET", "/partner/accounts")
    assert result.status == status and result.body[0]["error_key"] == key
    assert api.handle.sandbox.stats()["faults_injected"] == {fault: 1}
    api.handle.sandbox.faults.update({fault: 0.0})
    assert (await api.call("GET", "/partner/accounts")).status == 200


async def test_routing_answers_are_json(api: Api) -> None:
    missing = await api.call("GET", "/no/such/endpoint")
    assert missing.status == 404 and missing.body[0]["error_key"] == "not_found"
    wrong = await api.call("DELETE", "/partner/accounts")
    assert wrong.status == 405 and wrong.body[0]["error_key"] == "method_not_allowed"
    assert missing.content_type == wrong.content_type == "application/json"
    async with api.session.delete(api.handle.base_url + "/partner/accounts") as answer:
        assert set(answer.headers["Allow"].split(", ")) >= {"GET", "POST"}


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [("POST", "/v3/partner/accounts", "application/json"), ("POST", "/oauth2/token", "application/x-www-form-urlencoded"),
     ("PUT", "/_sandbox/faults", "application/json")],
)  # fmt: skip
async def test_a_client_hanging_up_mid_request_logs_no_traceback(
    api: Api, caplog: pytest.LogCaptureFixture, method: str, path: str, content_type: str
) -> None:
    """A request whose body never fully arrives: the sandbox logs no error and goes on serving."""
    handle = api.handle
    caplog.set_level(logging.DEBUG)
    body = json.dumps(provision("hung_up_user")).encode()
    headers = {**(await api.headers()), "Content-Type": content_type, "Content-Length": str(len(body) + 100)}
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    for _ in range(3):
        _, writer = await asyncio.open_connection(handle.host, handle.port)
        writer.write(head.encode() + b"\r\n" + body[:20])
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.close()
        await writer.wait_closed()
    await asyncio.sleep(0.05)
    assert (await api.call("GET", "/partner/accounts")).status == 200
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == [], [r.getMessage() for r in problems]
