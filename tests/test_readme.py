"""Every ```python block of README.md runs as printed, against a sandbox the environment points at.

Each block runs in a fresh subprocess, in a temporary directory holding ``accounts.csv`` (the README's
CSV example), with ``CTCT_*`` variables naming a fresh sandbox on loopback: the client reads them, so a
block is written exactly as a partner would run it against the real API. A line ``print(...)  # text``
promises ``text`` as that print's output, and the promises are checked in order.

A block's kind is the HTML comment on the line before it, if any:

- ``<!-- readme-test: web-app -->``: an aiohttp application; the test imports it (its ``__main__`` part
  does not run) and calls its routes, bad requests and API failures included;
- ``<!-- readme-test: pytest -->``: a test of the user's own suite; it runs under pytest with only
  pytest-asyncio, in a project without configuration;
- ``<!-- readme-test: redis -->``: a script run with ``CTCT_REDIS_URL`` naming a redis-server of its own;
- ``<!-- readme-test: skip: reason -->``: not run, with the reason.

A block with none of these runs as a script. No block is left out: the count of blocks is checked.

Every ```bash block is marked too: ``<!-- readme-test: sh -->`` runs it with bash (``set -eu``) in such a
directory (``plans.jsonl`` and ``cancel.csv`` name two accounts made first; the port 8911 of the README's
examples is the sandbox's), ``sh arq`` the same with a redis-server of its own in ``CTCT_REDIS_URL`` and
arq installed (marked ``recipe``: arq pins redis-py below 6, so ``nox -s recipes`` runs these in an
environment of their own and the ``tests`` session leaves them out), or ``skip: reason``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ctct_partner_async import NewAccount, PartnerClient, RetryPolicy
from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox

from . import redis_server

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<kind>[^>]*?) -->\n)?```python\n(?P<code>.*?)```", re.S)
SHELL = re.compile(r"(?:<!-- readme-test: (?P<kind>[^>]*?) -->\n)?```bash\n(?P<code>.*?)```", re.S)
HEADING = re.compile(r"^#+ (.*)$", re.M)
PROMISE = re.compile(r"print\(.*\)  # (.*)")
ACCOUNTS_CSV = """login_name,contact_email,password,country_code,state_code,organization_name
hank_smith_001,hank@example.com,s3cret-pass,US,MA,Hank's Fresh Fruit
josie_lang_002,josie@example.com,s3cret-pass,GB,,Josie's Jams
"""


def blocks(fence: re.Pattern[str] = BLOCK) -> list[Any]:
    """Every block of ``fence``'s language as a pytest param: (kind, code), named by its heading."""
    text = README.read_text()
    params = []
    for n, match in enumerate(fence.finditer(text), 1):
        heading = [h.group(1) for h in HEADING.finditer(text, 0, match.start())][-1]
        slug = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")[:40]
        kind = (match.group("kind") or "script").strip()
        marks = [pytest.mark.skip(reason=kind.partition(":")[2].strip())] if kind.startswith("skip") else []
        if kind == "sh arq":
            marks.append(pytest.mark.recipe)
        params.append(pytest.param(kind, match.group("code"), id=f"{n}-{slug}", marks=marks))
    return params


BLOCKS = blocks()
SHELL_BLOCKS = blocks(SHELL)


def test_every_block_is_collected_and_every_shell_block_marked() -> None:
    """The harness sees every ```python and ```bash fence of the README (none hidden by an odd marker), and
    each bash block says whether it runs."""
    text = README.read_text()
    assert len(BLOCKS) == text.count("```python\n")
    assert len(SHELL_BLOCKS) == text.count("```bash\n")
    assert all(p.values[0] in ("sh", "sh arq") or p.values[0].startswith("skip:") for p in SHELL_BLOCKS)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with run_sandbox(
        SandboxConfig(daily_quota=0)
    ) as sb:  # its token endpoint admits 1/s, as the real one
        yield sb


def environment(sb: SandboxHandle) -> dict[str, str]:
    """The process environment, with the ``CTCT_*`` settings of ``sb`` (and no proxy: loopback only)."""
    config = sb.sandbox.config
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTCT_") and "proxy" not in k.lower()}
    env.update({
        "CTCT_BASE_URL": sb.base_url, "CTCT_TOKEN_URL": sb.token_url, "CTCT_API_KEY": config.api_key,
        "CTCT_CLIENT_ID": config.client_id, "CTCT_CLIENT_SECRET": config.client_secret,
        "CTCT_LEGACY_BASE_URL": sb.legacy_url, "CTCT_LEGACY_USERNAME": config.client_id,
        "CTCT_LEGACY_PASSWORD": config.client_secret, "CTCT_LEGACY_API_KEY": config.api_key,
    })  # fmt: skip
    return env


async def run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(90):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(("kind", "code"), BLOCKS)
async def test_readme_block_runs_as_printed(
    kind: str, code: str, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """The block runs against the sandbox and prints what its comments promise."""
    (tmp_path / "accounts.csv").write_text(ACCOUNTS_CSV)
    env = environment(sandbox)
    if kind == "web-app":
        await check_web_app(code, sandbox, tmp_path, env)
        return
    if kind == "pytest":
        (tmp_path / "test_readme_example.py").write_text(code)
        (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the user's project: no asyncio_mode set
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_readme_example.py"]
        status, out, err = await run(argv, tmp_path, env)
        assert status == 0, out + err
        assert "1 passed" in out
        return
    assert kind in ("script", "redis"), f"unknown readme-test kind {kind!r}"
    async with redis_for(kind, tmp_path, env):
        status, out, err = await run([sys.executable, "-c", code], tmp_path, env)
    assert status == 0, err
    assert "WARNING" not in err and "gave no token" not in err, err  # nothing alarming for a reader
    promised = PROMISE.findall(code)
    printed = out.splitlines()
    assert [line for line in printed if line in promised] == promised or printed[
        : len(promised)
    ] == promised, printed


@contextlib.asynccontextmanager
async def redis_for(kind: str, tmp_path: Path, env: dict[str, str]) -> AsyncIterator[None]:
    """For a block that shares state in Redis: a redis-server of its own, named by ``CTCT_REDIS_URL``."""
    if kind not in ("redis", "sh arq"):
        yield
        return
    if shutil.which("redis-server") is None:
        pytest.fail(redis_server.MISSING)
    workdir = tmp_path / "redis"
    workdir.mkdir()
    async with redis_server.running_redis(workdir) as url:
        env["CTCT_REDIS_URL"] = url
        yield


@contextlib.contextmanager
def web_app(code: str, env: dict[str, str]) -> Iterator[web.Application]:
    """The README's application, imported with ``env`` as the environment. Its client makes one attempt
    a call and waits for no token (a test must not sit out the retry policy's 120 s in real time)."""
    namespace: dict[str, Any] = {"__name__": "readme_web_app"}
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        exec(compile(code, "README.md (web app)", "exec"), namespace)  # noqa: S102 (our own README)
        quick = RetryPolicy(max_attempts=1, deadline=0)
        namespace["PartnerClient"] = functools.partial(PartnerClient, retry_policy=quick)
        yield namespace["app"]
    finally:
        os.environ.clear()
        os.environ.update(old)


ROW = {"contact_email": "w@example.com", "login_name": "web_user_001", "password": "s3cret-pass",
       "country_code": "US", "state_code": "MA"}  # fmt: skip


async def check_web_app(code: str, sandbox: SandboxHandle, tmp_path: Path, env: dict[str, str]) -> None:
    """The README's aiohttp application, called: created 201, bad bodies 400, a broken rule 422, a taken
    login 409, the token endpoint down 502; and its server bound to loopback."""
    with web_app(code, env) as app:
        async with TestClient(TestServer(app)) as http:
            created = await http.post("/accounts", json=ROW)
            assert created.status == 201, await created.text()
            assert (await created.json())["encoded_account_id"]
            assert (await http.post("/accounts", json=ROW)).status == 409
            for bad in (b"{not json", b"[1, 2]", b'"text"'):
                answer = await http.post("/accounts", data=bad, headers={"Content-Type": "application/json"})
                assert answer.status == 400, (bad, await answer.text())
                assert "error" in await answer.json()
            invalid = await http.post("/accounts", json={**ROW, "contact_email": "nope"})
            assert invalid.status == 422 and "contact_email" in (await invalid.text())
            listed = await http.get("/accounts")
            assert listed.status == 200 and len(await listed.json()) == 1
            sandbox.sandbox.faults.token_outage = True
            sandbox.sandbox.revoke_tokens()
            down = await http.get("/accounts")
            assert down.status == 502, await down.text()
            assert (await down.json()) == {"error": "Constant Contact failed (UnauthorizedError)"} or (
                "Constant Contact failed" in (await down.json())["error"]
            )
    assert "127.0.0.1" in code.split('if __name__ == "__main__":', 1)[1]


async def test_the_web_app_answers_503_with_retry_after_when_throttled() -> None:
    """When the API throttles, the README's application answers 503 with a Retry-After, never 500."""
    code = next(p.values[1] for p in BLOCKS if p.values[0] == "web-app")
    async with run_sandbox(SandboxConfig(daily_quota=0, token_rate_limit=0, rate_limit=0)) as sb:
        with web_app(code, environment(sb)) as app:
            async with TestClient(TestServer(app)) as http:
                sb.sandbox.faults.throttle_429 = 1.0
                answer = await http.get("/accounts")
                assert answer.status == 503, await answer.text()
                assert answer.headers["Retry-After"].isdigit()


async def seed_plan_and_cancel_files(sb: SandboxHandle, directory: Path) -> None:
    """Two accounts in ``sb``, named in ``plans.jsonl`` and ``cancel.csv`` as the README's examples are."""
    config = sb.sandbox.config
    async with PartnerClient(api_key=config.api_key, client_id=config.client_id, client_secret=config.client_secret,
                             base_url=sb.base_url, token_url=sb.token_url) as client:  # fmt: skip
        ids = []
        for login in ("seed_plans_1", "seed_cancel_2"):
            made = await client.accounts.create(NewAccount(contact_email=f"{login}@example.com", login_name=login,
                                                           password="s3cret-pass", country_code="GB"))  # fmt: skip
            ids.append(made.encoded_account_id)
    plan = {"encoded_account_id": ids[0], "plan_type": "GOLD", "billing_day_of_month": 15}
    (directory / "plans.jsonl").write_text(json.dumps(plan) + "\n")
    (directory / "cancel.csv").write_text(f"encoded_account_id,reason_id\n{ids[1]},2\n")


@pytest.mark.parametrize(("kind", "code"), SHELL_BLOCKS)
async def test_readme_shell_block_runs_as_printed(
    kind: str, code: str, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """The block's commands run, in order, against the sandbox, each with exit status 0."""
    if kind == "sh arq" and importlib.util.find_spec("arq") is None:
        pytest.skip("needs arq, which pins redis-py below 6: nox -s recipes runs it")
    (tmp_path / "accounts.csv").write_text(ACCOUNTS_CSV)
    await seed_plan_and_cancel_files(sandbox, tmp_path)
    env = environment(sandbox)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    port = str(sandbox.base_url.split(":")[-1].split("/")[0])
    script = "set -eu\n" + code.replace("8911", port)
    async with redis_for(kind, tmp_path, env):
        status, out, err = await run(["bash", "-c", script], tmp_path, env)
    assert status == 0, out + err
    assert "s3cret-pass" not in out + err  # the rows' password: in no output, no log line
    assert "gave no token" not in err, err  # a throttled token request asked again is no warning
