"""One bad row is that row's problem (issue 11, case 4): text that can't be UTF-8 and dates with no UTC
time are found by validation, named with their field, and nothing of them is sent."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ctct_partner_async import (
    Journal,
    NewAccount,
    OutcomeState,
    PartnerClient,
    Request,
    Response,
    ValidationError,
    read_rows,
)
from ctct_partner_async.testing import MockTransport

LATE = dt.datetime.fromisoformat("9999-12-31T23:59:59-14:00")  # 10000-01-01 in UTC


def created(request: Request) -> Response:
    login = json.loads(request.body or b"{}").get("login_name", "x")
    return Response.from_json(201, {"encoded_account_id": f"id-{login}"})


async def _token() -> str:
    return "jwt"


def client(transport: MockTransport) -> PartnerClient:
    return PartnerClient(api_key="k", token_provider=_token, transport=transport, rate_limit=None)


def row(i: int, **changes: str) -> dict[str, str]:
    return {"contact_email": f"o{i}@example.com", "login_name": f"client_{i:05d}", "password": "s3cret-pass",
            "country_code": "US", "state_code": "MA", "organization_name": f"Org {i}", **changes}  # fmt: skip


async def test_a_lone_surrogate_in_a_jsonl_row_is_that_rows_problem(tmp_path: Path) -> None:
    """A JSONL row holding "\\ud800" is invalid, naming the field; the others are created; the journal
    holds no row of it (nothing was sent)."""
    source = tmp_path / "rows.jsonl"
    lines = [json.dumps(row(1)), json.dumps(row(2)).replace("Org 2", "Org \\ud800"), json.dumps(row(3))]
    source.write_text("\n".join(lines) + "\n")
    transport = MockTransport(created)
    async with client(transport) as c:
        with Journal(tmp_path / "j.sqlite", job="provision") as journal:
            outcomes = [o async for o in c.bulk.create_accounts(read_rows(source), journal=journal)]
            keys = {e.key for e in journal.entries()}
    states = {o.key: o.state for o in outcomes}
    assert states == {"client_00001": OutcomeState.CREATED, "client_00002": OutcomeState.INVALID,
                      "client_00003": OutcomeState.CREATED}  # fmt: skip
    bad = next(o for o in outcomes if o.state is OutcomeState.INVALID)
    assert bad.error is not None and "organization_name" in bad.error and "surrogate" in bad.error
    assert len(transport.requests) == 2
    assert keys == {"client_00001", "client_00003"}


async def test_a_lone_surrogate_in_a_model_is_a_validation_error_before_sending() -> None:
    """The same for one create with a NewAccount (and for a model row of a bulk job): nothing is sent."""
    transport = MockTransport(created)
    bad = NewAccount(**row(1, organization_name="Org \ud800"))  # type: ignore[arg-type]  # a row of strings
    async with client(transport) as c:
        with pytest.raises(ValidationError) as info:
            await c.accounts.create(bad)
        outcomes = [o async for o in c.bulk.create_accounts([bad, NewAccount(**row(2))])]  # type: ignore[arg-type]
    assert info.value.field == "organization_name"
    assert {o.index: o.state for o in outcomes} == {1: OutcomeState.INVALID, 2: OutcomeState.CREATED}
    assert len(transport.requests) == 1


async def test_a_date_with_no_utc_time_is_refused_before_sending() -> None:
    """effective_date 9999-12-31T23:59:59-14:00 overflows in UTC: ValidationError naming it, no request."""
    transport = MockTransport(created)
    async with client(transport) as c:
        with pytest.raises(ValidationError) as info:
            await c.accounts.cancel("a07e1my9tbw0", effective_date=LATE)
    assert info.value.field == "effective_date" and "UTC" in info.value.rule
    assert transport.requests == []
