"""The one-shot token fault: ``token_fail_next`` requests answer ``token_fail_status``, then all is well."""

from __future__ import annotations

from typing import Any

import pytest

from ctct_partner_async.sandbox import Faults
from ctct_partner_async.sandbox.cli import build_parser, config_from_args, main
from ctct_partner_async.sandbox.config import parse_fault_assignment
from tests.sandbox.conftest import StartSandbox
from tests.sandbox.support import Api


async def test_next_n_token_requests_fail_then_tokens_flow(start_sandbox: StartSandbox) -> None:
    """Two scripted 503s (OAuth ``temporarily_unavailable``), then a token; counted per status and fault."""
    api = await start_sandbox(faults=Faults(token_fail_next=2))
    sandbox = api.handle.sandbox
    failed = [await api.fetch_token() for _ in range(2)]
    assert [(r.status, r.body["error"]) for r in failed] == [(503, "temporarily_unavailable")] * 2
    assert sandbox.faults.token_fail_next == 0
    ok = await api.fetch_token()
    assert ok.status == 200
    assert "access_token" in ok.body
    stats = sandbox.stats()
    assert stats["token_requests"] == 3
    assert stats["tokens_issued"] == 1
    assert stats["token_responses_by_status"] == {"503": 2, "200": 1}
    assert stats["faults_injected"] == {"token_fail_next": 2}
    assert [e["fault"] for e in sandbox.request_log()] == ["token_fail_next", "token_fail_next", None]


@pytest.mark.parametrize(
    ("status", "key", "value"),
    [
        (500, "error", "server_error"),
        (502, "error", "server_error"),
        (503, "error", "temporarily_unavailable"),
        (429, "error_key", "throttled"),
        (400, "error", "invalid_client"),
        (401, "error", "invalid_client"),
        (403, "error", "unauthorized_client"),
    ],
)
async def test_each_status_answers_like_the_endpoint(
    start_sandbox: StartSandbox, status: int, key: str, value: str
) -> None:
    """A scripted failure carries the body the token endpoint sends for that status anyway."""
    api = await start_sandbox(faults=Faults(token_fail_next=1, token_fail_status=status))
    result = await api.fetch_token()
    assert (result.status, result.body[key]) == (status, value)
    assert (await api.fetch_token()).status == 200


async def test_scripted_failure_comes_before_credentials_and_outage(start_sandbox: StartSandbox) -> None:
    """The countdown strikes whatever the request (wrong credentials too); token_outage answers after it."""
    api = await start_sandbox(faults=Faults(token_fail_next=1, token_fail_status=500, token_outage=True))
    assert (await api.fetch_token(grant_type="password")).status == 500
    outage = await api.fetch_token()
    assert (outage.status, outage.body["error"]) == (503, "temporarily_unavailable")


async def test_admin_api_sets_and_shows_the_countdown(api: Api) -> None:
    """PUT /_sandbox/faults arms the fault; GET shows it counting down; bad values are a 400, nothing set."""
    armed = await api.admin("PUT", "/faults", {"token_fail_next": 2, "token_fail_status": "429"})
    assert armed.status == 200
    assert (armed.body["token_fail_next"], armed.body["token_fail_status"]) == (2, 429)
    assert (await api.fetch_token()).status == 429
    assert (await api.admin("GET", "/faults")).body["token_fail_next"] == 1
    for bad in ({"token_fail_next": -1}, {"token_fail_status": 200}, {"token_fail_next": True}):
        assert (await api.admin("PUT", "/faults", bad)).status == 400
    current = await api.admin("GET", "/faults")
    assert (current.body["token_fail_next"], current.body["token_fail_status"]) == (1, 429)
    assert (await api.fetch_token()).status == 429
    assert (await api.fetch_token()).status == 200


async def test_reset_rearms_the_configured_countdown(start_sandbox: StartSandbox) -> None:
    """reset() puts the countdown back to the configuration's (the config itself never counts down)."""
    api = await start_sandbox(faults=Faults(token_fail_next=1))
    assert (await api.fetch_token()).status == 503
    assert api.handle.sandbox.config.faults.token_fail_next == 1
    api.handle.sandbox.reset()
    assert api.handle.sandbox.faults.token_fail_next == 1


def test_fault_flags_set_the_countdown() -> None:
    """``--fault token_fail_next=3 --fault token_fail_status=500`` reaches the config."""
    args = build_parser().parse_args(["--fault", "token_fail_next=3", "--fault", "token_fail_status=500"])
    faults = config_from_args(args).faults
    assert (faults.token_fail_next, faults.token_fail_status) == (3, 500)
    assert parse_fault_assignment("token_fail_next = 2") == ("token_fail_next", 2)


@pytest.mark.parametrize(
    "fault",
    ["token_fail_next=-1", "token_fail_next=1.5", "token_fail_next=x", "token_fail_status=200",
     "token_fail_status=600", "token_fail_status=5e2"],
)  # fmt: skip
def test_bad_countdown_flags_exit_2(fault: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad token_fail_next / token_fail_status flag is a usage error naming the fault."""
    with pytest.raises(SystemExit) as exc:
        main(["--fault", fault])
    assert exc.value.code == 2
    assert "token_fail" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"token_fail_next": "4"}, (4, 503)),
        ({"token_fail_next": 4.0, "token_fail_status": 401}, (4, 401)),
        ({"token_fail_next": " 0 ", "token_fail_status": "500"}, (0, 500)),
    ],
)
def test_update_coerces_whole_numbers(values: dict[str, Any], expected: tuple[int, int]) -> None:
    """JSON numbers, whole floats and digit strings are accepted as counts and statuses."""
    faults = Faults()
    faults.update(values)
    assert (faults.token_fail_next, faults.token_fail_status) == expected
    assert isinstance(faults.token_fail_next, int)


def test_update_with_a_bad_countdown_changes_nothing() -> None:
    """A bad status next to a good count leaves both as they were."""
    faults = Faults()
    with pytest.raises(ValueError, match="token_fail_status"):
        faults.update({"token_fail_next": 3, "token_fail_status": 302})
    assert faults == Faults()
