"""One token renewal at a time for every process on a client id, against a real redis-server: the lock's
semantics, compare-and-clear after a 401, N processes starting together making one token request (and
one more after the sandbox revokes it), and tokens still coming when Redis does not answer."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from ctct_partner_async import (
    AuthenticationError,
    CachedToken,
    PartnerClient,
    RetryPolicy,
    SharedTokenCache,
    TokenSettings,
)
from ctct_partner_async._budget import connect
from ctct_partner_async.sandbox import SandboxConfig, run_sandbox
from ctct_partner_async.shared import RedisTokenCache, lock_key, token_key

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
API_KEY = "sandbox-api-key"
KEY = f"https://token.example/oauth2/token {CLIENT_ID} v3api/general.partner"
WORKERS = 4


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


# -- the lock and compare-and-clear, on the real server ------------------------------------------------------


async def test_the_lock_has_one_owner_and_only_the_owner_releases_it(store: redis.asyncio.Redis) -> None:
    """``lock`` is SET NX PX for an owner (extended when the owner takes it again): another taker gets
    False; a release by another owner changes nothing; ``keep`` holds it for a backoff instead of deleting
    it; the owner's release frees it; a holder that never releases loses it after its ttl."""
    cache, other = RedisTokenCache(store), RedisTokenCache(store)
    assert isinstance(cache, SharedTokenCache)
    assert await cache.lock(KEY, "owner-a", 5.0) is True
    assert await other.lock(KEY, "owner-b", 5.0) is False
    name = lock_key("ctct", KEY)
    assert 4_000 < await store.pttl(name) <= 5_000
    assert await cache.lock(KEY, "owner-a", 8.0) is True  # its own: extended
    assert 7_000 < await store.pttl(name) <= 8_000
    await other.unlock(KEY, "owner-b")
    assert await store.get(name) == b"owner-a"
    await cache.unlock(KEY, "owner-a", keep=0.3)
    assert await store.get(name) == b"owner-a" and 0 < await store.pttl(name) <= 300
    await cache.unlock(KEY, "owner-a")
    assert await store.exists(name) == 0
    assert await other.lock(KEY, "owner-b", 0.05) is True
    await asyncio.sleep(0.08)  # a killed holder: the lock goes by itself after its ttl
    assert await cache.lock(KEY, "owner-a", 5.0) is True
    assert CLIENT_ID not in name


async def test_discard_removes_only_the_refused_token(store: redis.asyncio.Redis) -> None:
    """A 401's compare-and-clear: the entry goes if it still holds the refused token, and stays if another
    process has replaced it already (or it is not one of ours)."""
    cache = RedisTokenCache(store)
    await cache.set(KEY, CachedToken("refused.jwt.token", time.time() + 60))
    await cache.discard(KEY, "another.jwt.token")
    assert (await cache.get(KEY)) is not None
    await cache.discard(KEY, "refused.jwt.token")
    assert await cache.get(KEY) is None
    replaced = CachedToken("new.jwt.token", time.time() + 60)
    await cache.set(KEY, replaced)
    await cache.discard(KEY, "refused.jwt.token")
    assert await cache.get(KEY) == replaced
    await store.set(token_key("ctct", KEY), b"not json")
    await cache.discard(KEY, "refused.jwt.token")  # no error from the script
    assert await store.get(token_key("ctct", KEY)) == b"not json"


# -- N processes ---------------------------------------------------------------------------------------------

WORKER = """
import asyncio, os, sys
from ctct_partner_async import PartnerClient, TokenSettings

async def main():
    async with PartnerClient(
        api_key=os.environ["T_API_KEY"], client_id=os.environ["T_CLIENT_ID"],
        client_secret=os.environ["T_CLIENT_SECRET"], base_url=os.environ["T_BASE_URL"],
        token_url=os.environ["T_TOKEN_URL"], redis_url=os.environ["T_REDIS_URL"], rate_limit=None,
        token_settings=TokenSettings(first_request_jitter=0, poll_interval=0.01),
    ) as client:
        await client.refresh_quota()  # Redis connected before the start
        loop = asyncio.get_running_loop()
        for phase in ("first", "after revoke"):
            print("ready", flush=True)
            await loop.run_in_executor(None, sys.stdin.readline)  # all start at once
            await client.webhooks.get(1)
            print("done", phase, flush=True)

asyncio.run(main())
"""


class Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def expect(self, line: str) -> None:
        assert self.proc.stdout is not None
        got = await asyncio.wait_for(self.proc.stdout.readline(), timeout=60)
        if got.decode().strip() != line:
            rest = await self.proc.communicate()
            raise AssertionError(f"expected {line!r}, got {got!r}; stderr: {rest[1].decode()}")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")


async def start_workers(env: dict[str, str]) -> list[Worker]:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for _ in range(WORKERS)
    ]
    return [Worker(p) for p in procs]


async def test_processes_starting_together_make_one_token_request_and_one_after_a_revoke(
    redis_url: str,
) -> None:
    """Four processes on one client id with ``redis_url``, released at the same moment, make one token
    request; the sandbox then revokes it: each process's call gets a 401 and is replayed, and the four
    together make one more token request (the 401's compare-and-clear and the lock), not four."""
    config = SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0)
    async with run_sandbox(config) as sb:
        env = {
            **os.environ, "T_REDIS_URL": redis_url, "T_API_KEY": API_KEY, "T_CLIENT_ID": CLIENT_ID,
            "T_CLIENT_SECRET": CLIENT_SECRET, "T_BASE_URL": sb.base_url, "T_TOKEN_URL": sb.token_url,
        }  # fmt: skip
        workers = await start_workers(env)
        try:
            for phase in ("first", "after revoke"):
                await asyncio.gather(*(w.expect("ready") for w in workers))
                if phase == "after revoke":
                    assert sb.sandbox.revoke_tokens() == 1
                for w in workers:
                    w.go()
                await asyncio.gather(*(w.expect(f"done {phase}") for w in workers))
                stats = sb.sandbox.stats()
                if phase == "first":
                    assert (stats["token_requests"], stats["api_requests"]) == (1, WORKERS)
            for w in workers:
                assert await asyncio.wait_for(w.proc.wait(), timeout=60) == 0
        finally:
            for w in workers:
                if w.proc.returncode is None:
                    w.proc.kill()
                    await w.proc.wait()
        stats = sb.sandbox.stats()
    assert stats["token_requests"] == stats["tokens_issued"] == 2
    assert stats["api_requests"] == WORKERS + 2 * WORKERS  # each refused once, then replayed


async def test_a_refused_token_is_gone_from_redis_for_the_next_process(redis_url: str) -> None:
    """A client whose token the API refused, while the token endpoint is down, removes it from Redis: a
    client started afterwards (another process) does not send the refused token (one API request, not a
    401 and a replay)."""
    config = SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0)
    settings = TokenSettings(first_request_jitter=0, min_interval=0, backoff_initial=0.05, backoff_max=0.05)
    quick = RetryPolicy(max_attempts=1, deadline=0)  # the first client gives up at once
    async with run_sandbox(config) as sb:

        def client(**options: Any) -> PartnerClient:
            return PartnerClient(
                api_key=API_KEY, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=sb.base_url,
                token_url=sb.token_url, redis_url=redis_url, rate_limit=None, token_settings=settings,
                **options,
            )  # fmt: skip

        async with client(retry_policy=quick) as first:
            await first.webhooks.list()
            sb.sandbox.revoke_tokens()
            sb.sandbox.faults.token_outage = True
            with pytest.raises(AuthenticationError):
                await first.webhooks.list()  # 401, and no new token to replay with
        sb.sandbox.faults.token_outage = False
        before = sb.sandbox.stats()["api_requests"]
        async with client() as second:
            await second.webhooks.list()
        after = sb.sandbox.stats()["api_requests"]
    assert isinstance(before, int) and isinstance(after, int)
    assert after - before == 1


# -- when Redis does not answer ------------------------------------------------------------------------------


async def test_without_an_answer_from_redis_tokens_still_come_and_it_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A shared cache on a port where nothing listens: every call succeeds on the manager's own token
    requests; one WARNING says so; nothing secret is in it."""
    dead = connect("redis://127.0.0.1:1/0", setting="redis_url")  # the SDK's own connection settings
    async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0)) as sb:
        client = PartnerClient(
            api_key=API_KEY, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=sb.base_url,
            token_url=sb.token_url, token_settings=TokenSettings(first_request_jitter=0, min_interval=0), rate_limit=None,
            token_cache=RedisTokenCache(dead),
        )  # fmt: skip
        with caplog.at_level(logging.DEBUG, logger="ctct_partner_async"):
            async with client:
                await client.webhooks.get(1)
                sb.sandbox.revoke_tokens()
                await client.webhooks.get(1)  # a 401, a renewal without the cache, a replay
        stats = sb.sandbox.stats()
    await dead.aclose()
    assert (stats["token_requests"], stats["api_requests"]) == (2, 3)
    warnings = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "ctct_partner_async.auth"
    ]
    assert [r.getMessage() for r in warnings] == [
        "token cache did not answer (ConnectionError); renewing without it until it does"
    ]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert CLIENT_SECRET not in text and API_KEY not in text
