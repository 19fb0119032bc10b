"""The shared token cache against a real redis-server: round trip, hashed keys, expiry, corrupt values,
and one token request for clients (and processes) on one client id."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio

from ctct_partner_async import CachedToken, PartnerClient, TokenSettings
from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox
from ctct_partner_async.shared import MISSING_REDIS, RedisTokenCache

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
API_KEY = "sandbox-api-key"
KEY = f"https://token.example/oauth2/token {CLIENT_ID} v3api/general.partner"
JWT = "header.payload-jwt-secret.signature"
SETTINGS = TokenSettings(first_request_jitter=0)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def names(store: redis.asyncio.Redis) -> list[str]:
    """Every key in the Redis database, as text."""
    return [k.decode() if isinstance(k, bytes) else k for k in await store.keys("*")]


@asynccontextmanager
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=0)) as sb:
        yield sb


def client_for(sb: SandboxHandle, cache: RedisTokenCache) -> PartnerClient:
    return PartnerClient(
        api_key=API_KEY, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=sb.base_url,
        token_url=sb.token_url, token_settings=SETTINGS, rate_limit=None, token_cache=cache,
    )  # fmt: skip


async def test_round_trip(store: redis.asyncio.Redis) -> None:
    """A token set under a key is read back as it was; another key reads None."""
    cache = RedisTokenCache(store)
    token = CachedToken(JWT, time.time() + 60)
    await cache.set(KEY, token)
    assert await cache.get(KEY) == token
    assert await cache.get(KEY + " other") is None


async def test_stored_key_is_a_hash_under_the_prefix(store: redis.asyncio.Redis) -> None:
    """The Redis key is ``prefix:token:<sha256>``: neither the client id nor the token URL shows in it."""
    await RedisTokenCache(store, prefix="tenant-a").set(KEY, CachedToken(JWT, time.time() + 60))
    keys = await names(store)
    assert len(keys) == 1
    prefix, kind, digest = keys[0].split(":")
    assert (prefix, kind, len(digest)) == ("tenant-a", "token", 64)
    assert CLIENT_ID not in keys[0] and "token.example" not in keys[0]
    assert json.loads(await store.get(keys[0]) or b"") == {
        "value": JWT,
        "expires_at": pytest.approx(time.time() + 60, abs=5),
    }


async def test_entry_expires_with_the_token(store: redis.asyncio.Redis) -> None:
    """The Redis entry expires when the token does; an already expired token is not stored."""
    cache = RedisTokenCache(store)
    await cache.set(KEY, CachedToken(JWT, time.time() + 30))
    (name,) = await store.keys("*")
    assert 25_000 < await store.pttl(name) <= 30_000
    await store.flushdb()
    await cache.set(KEY, CachedToken(JWT, time.time() - 1))
    assert await store.keys("*") == []


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"\xff\xfe", b"[1, 2]", b'{"value": 3, "expires_at": 1}', b'{"value": "x"}',
     b'{"value": "x", "expires_at": true}', b'{"value": "", "expires_at": 1}', b'{"value": "x", "expires_at": NaN}'],
)  # fmt: skip
async def test_corrupt_value_reads_none(
    store: redis.asyncio.Redis, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored value that is not one of our tokens reads as None, logged without its content."""
    cache = RedisTokenCache(store)
    await cache.set(KEY, CachedToken(JWT, time.time() + 60))
    (name,) = await names(store)
    await store.set(name, raw)
    with caplog.at_level(logging.WARNING, logger="ctct_partner_async.shared"):
        assert await cache.get(KEY) is None
    (record,) = caplog.records
    assert record.name == "ctct_partner_async.shared" and record.levelno == logging.WARNING
    assert record.getMessage() == f"token cache entry {name} is not a token; ignored"


async def test_two_clients_share_one_token(redis_url: str, store: redis.asyncio.Redis) -> None:
    """Two clients on one client id with the Redis cache: the second uses the first's token, one request."""
    async with sandbox() as sb:
        first = RedisTokenCache.from_url(redis_url)
        second = RedisTokenCache.from_url(redis_url)
        try:
            for cache in (first, second):
                async with client_for(sb, cache) as client:
                    await client.webhooks.get(1)
        finally:
            await first.aclose()
            await second.aclose()
        stats = sb.sandbox.stats()
    assert stats["token_requests"] == 1
    assert stats["api_requests"] == 2
    keys = await names(store)
    assert len(keys) == 1 and CLIENT_ID not in keys[0] and CLIENT_SECRET not in keys[0]


SCRIPT = """
import asyncio, os
from ctct_partner_async import PartnerClient, TokenSettings
from ctct_partner_async.shared import RedisTokenCache

async def main():
    cache = RedisTokenCache.from_url(os.environ["T_REDIS_URL"])
    try:
        async with PartnerClient(
            api_key=os.environ["T_API_KEY"], client_id=os.environ["T_CLIENT_ID"],
            client_secret=os.environ["T_CLIENT_SECRET"], base_url=os.environ["T_BASE_URL"],
            token_url=os.environ["T_TOKEN_URL"], token_settings=TokenSettings(first_request_jitter=0),
            rate_limit=None, token_cache=cache,
        ) as client:
            await client.webhooks.get(1)
    finally:
        await cache.aclose()

asyncio.run(main())
"""


async def run_worker(sb: SandboxHandle, redis_url: str) -> None:
    env = {
        **os.environ, "T_REDIS_URL": redis_url, "T_API_KEY": API_KEY, "T_CLIENT_ID": CLIENT_ID,
        "T_CLIENT_SECRET": CLIENT_SECRET, "T_BASE_URL": sb.base_url, "T_TOKEN_URL": sb.token_url,
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()


async def test_two_processes_one_after_the_other_make_one_token_request(redis_url: str) -> None:
    """Two worker processes on one client id, one after the other: the sandbox issues exactly one token."""
    async with sandbox() as sb:
        await run_worker(sb, redis_url)
        await run_worker(sb, redis_url)
        stats = sb.sandbox.stats()
    assert stats["token_requests"] == stats["tokens_issued"] == 1
    assert stats["api_requests"] == 2


def test_missing_redis_py_says_which_extra_to_install() -> None:
    """Without redis-py the package and ``shared`` still import; ``from_url`` names the extra to install."""
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import ctct_partner_async, ctct_partner_async.shared as s\n"
        "try:\n    s.RedisTokenCache.from_url('redis://127.0.0.1:1/0')\n"
        "except ImportError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == MISSING_REDIS
    assert 'pip install "ctct-partner-async[redis]"' in MISSING_REDIS
