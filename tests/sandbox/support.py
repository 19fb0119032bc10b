"""Helpers for the sandbox tests: a fake clock, a raw-JSON API client, and the vendor spec."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp

from ctct_partner_async.sandbox import SandboxHandle

# 2026-03-14T12:00:00Z: day of month 14, far from a UTC midnight.
START = 1_773_489_600.0
API_KEY = "sandbox-api-key"
CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"


class FakeClock:
    """Epoch seconds that only move when told to."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Result(NamedTuple):
    status: int
    body: Any
    text: str
    content_type: str


def basic(user: str = CLIENT_ID, password: str = CLIENT_SECRET) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def provision(login: str, /, **overrides: Any) -> dict[str, Any]:
    """A valid create body; ``overrides`` replace fields (``...`` removes one)."""
    body: dict[str, Any] = {
        "contact_email": "hank.smith@example.com",
        "contact_phone": "111-333-5656",
        "country_code": "US",
        "organization_name": "Hanks Fresh Fruit",
        "state_code": "MA",
        "time_zone_id": "US/Eastern",
        "website": "http://www.example.com",
        "login_name": login,
        "password": "correct-horse-9",
        "first_name": "Hank",
        "last_name": "Smith",
        "billing_locale": "en_US",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not ...}


async def _result(response: aiohttp.ClientResponse) -> Result:
    text = await response.text()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    return Result(response.status, body, text, response.content_type)


class Api:
    """Speaks raw HTTP to a running sandbox (no SDK code)."""

    def __init__(self, session: aiohttp.ClientSession, handle: SandboxHandle) -> None:
        self.session = session
        self.handle = handle
        self._token: str | None = None

    async def fetch_token(self, **form: str) -> Result:
        data = {"grant_type": "client_credentials", **form}
        headers = {"Authorization": basic()}
        async with self.session.post(self.handle.token_url, data=data, headers=headers) as response:
            return await _result(response)

    async def token(self) -> str:
        if self._token is None:
            result = await self.fetch_token()
            assert result.status == 200, result.text
            self._token = result.body["access_token"]
        return self._token

    async def headers(self) -> dict[str, str]:
        return {"x-api-key": API_KEY, "Authorization": f"Bearer {await self.token()}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> Result:
        merged = {**(await self.headers()), **(headers or {})}
        kwargs: dict[str, Any] = {"headers": merged, "params": params}
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data
        async with self.session.request(method, self.handle.base_url + path, **kwargs) as response:
            return await _result(response)

    async def create(self, login: str, /, **overrides: Any) -> Result:
        return await self.call("POST", "/partner/accounts", json_body=provision(login, **overrides))

    async def create_ok(self, login: str, /, **overrides: Any) -> str:
        result = await self.create(login, **overrides)
        assert result.status == 201, result.text
        return str(result.body["encoded_account_id"])

    async def legacy(
        self,
        method: str,
        account_id: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        api_key: str = API_KEY,
    ) -> Result:
        merged = {"Authorization": basic(), "Accept": "application/json", **(headers or {})}
        url = f"{self.handle.legacy_url}/partner/accounts/{account_id}/plan"
        async with self.session.request(
            method, url, params={"api_key": api_key}, json=json_body, headers=merged
        ) as response:
            return await _result(response)

    async def admin(self, method: str, path: str, json_body: Any = None) -> Result:
        async with self.session.request(method, self.handle.admin_url + path, json=json_body) as response:
            return await _result(response)


def spec_path() -> Path:
    """The vendor spec: ``api/`` beside the tests if present, else the shared copy."""
    here = Path(__file__).resolve()
    local = here.parents[2] / "api" / "ctct-v3-partner-openapi.json"
    return local if local.exists() else here.parents[3] / "shared" / "api" / "ctct-v3-partner-openapi.json"


def load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(spec_path().read_text())
    return spec
