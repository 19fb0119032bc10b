"""Benchmark: account creates against the sandbox alone, beside a bare aiohttp handler, same run.

Each server runs in its own process pinned to one core (``os.sched_setaffinity`` where available), with
rate limits and faults off; the load comes from an aiohttp client in this process (pinned to the other
cores when there are any). Reported: creates per second, and server CPU per create (user + system time
of the server process, from psutil if installed, else ``/proc/<pid>/stat``) for the sandbox and for a
bare ``aiohttp.web`` handler that reads the body and answers the same JSON; and the CPU ratio.
Goal: at least 2,000 creates/s and a CPU ratio of at most 1.5. Each figure is the median over alternating
rounds (bare, sandbox, bare, ...), so background load hits both sides alike.

    python benchmarks/bench_sandbox.py [--quick] [--json]

``run(quick)`` returns the figures as a dict for a benchmark suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
CREATE_PATH = "/v3/partner/accounts"
CONCURRENCY = 32
SERVER_CORE = 0


# -- the bare baseline server -------------------------------------------------------------------------
async def bare_create(request: web.Request) -> web.Response:
    """Read the body, answer a create's 201 JSON: the least any create handler must do."""
    await request.read()
    body = {"encoded_account_id": "a07e1m09lsz5dl", "provision_uuid": str(uuid.uuid4())}
    return web.Response(body=json.dumps(body).encode(), status=201, content_type="application/json")


def write_port(path: Path, port: int) -> None:
    """Tell the parent which port we listen on."""
    path.write_text(f"{port}\n")


async def serve_bare(ready_file: Path) -> None:
    """Serve the bare handler on an ephemeral loopback port until killed."""
    app = web.Application()
    app.router.add_post(CREATE_PATH, bare_create)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    write_port(ready_file, int(runner.addresses[0][1]))
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


# -- processes ------------------------------------------------------------------------------------------
def pin(pid: int, cores: set[int]) -> None:
    """Pin a process to ``cores`` where the platform allows it."""
    if hasattr(os, "sched_setaffinity") and cores:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, cores)


def available_cores() -> set[int]:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    try:
        import psutil  # type: ignore[import-untyped]  # optional, not a project dependency
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@contextlib.contextmanager
def server_process(argv: list[str], core: int | None) -> Iterator[tuple[int, int]]:
    """Start a server that writes its port to a ready file; yield (pid, port); stop it."""
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "port"
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.Popen(
            [sys.executable, *argv, "--ready-file", str(ready)], env=env, stdout=subprocess.DEVNULL
        )
        try:
            if core is not None:
                pin(proc.pid, {core})
            yield proc.pid, wait_for_port(ready, proc)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def wait_for_port(ready: Path, proc: subprocess.Popen[bytes]) -> int:
    """The port a server wrote to its ready file."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text().strip():
            return int(ready.read_text())
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        time.sleep(0.02)
    raise RuntimeError("server did not become ready")


# -- load -----------------------------------------------------------------------------------------------
def create_body(index: int, tag: str) -> dict[str, object]:
    """A valid create body with a unique login name."""
    return {
        "contact_email": f"bench{index}@example.com",
        "country_code": "US",
        "state_code": "MA",
        "organization_name": "Bench Fruit",
        "login_name": f"{tag}-{index:08d}",
        "password": "correct-horse-battery",
        "first_name": "Hank",
        "last_name": "Smith",
        "website": "https://example.com",
    }


async def fetch_token(session: aiohttp.ClientSession, base: str) -> str:
    """A sandbox access token."""
    basic = base64.b64encode(b"sandbox-client:sandbox-secret").decode()
    async with session.post(
        base + "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    ) as response:
        response.raise_for_status()
        return str((await response.json())["access_token"])


async def drive(base: str, count: int, tag: str, headers: dict[str, str]) -> float:
    """Send ``count`` creates with CONCURRENCY workers; return the wall time."""
    counter = iter(range(count))
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            for index in counter:
                async with session.post(base + CREATE_PATH, json=create_body(index, tag)) as response:
                    if response.status != 201:
                        raise RuntimeError(f"create answered {response.status}: {await response.text()}")
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


async def measure(base: str, pid: int, count: int, headers: dict[str, str], tag: str) -> dict[str, float]:
    """Warm up, then time ``count`` creates and the server's CPU over them."""
    await drive(base, max(200, count // 10), f"{tag}w", headers)
    cpu_before = cpu_seconds(pid)
    wall = await drive(base, count, tag, headers)
    cpu = cpu_seconds(pid) - cpu_before
    return {"creates_per_s": count / wall, "cpu_us_per_create": cpu / count * 1e6}


async def bench(quick: bool, sandbox: tuple[int, int], bare: tuple[int, int]) -> dict[str, float]:
    """Alternate bare and sandbox rounds (same conditions for both); report the median of each figure."""
    count, rounds = (3_000, 1) if quick else (10_000, 5)
    sandbox_base = f"http://127.0.0.1:{sandbox[1]}"
    async with aiohttp.ClientSession() as session:
        token = await fetch_token(session, sandbox_base)
    headers = {"x-api-key": "sandbox-api-key", "Authorization": f"Bearer {token}"}
    samples: dict[str, list[float]] = {}
    for round_no in range(rounds):
        for name, (pid, port) in (("bare", bare), ("sandbox", sandbox)):
            result = await measure(f"http://127.0.0.1:{port}", pid, count, headers, f"r{round_no}")
            for metric, value in result.items():
                samples.setdefault(f"{name}_{metric}", []).append(value)
    figures = {key: statistics.median(values) for key, values in samples.items()}
    figures["cpu_ratio"] = figures["sandbox_cpu_us_per_create"] / figures["bare_cpu_us_per_create"]
    figures["creates_per_round"] = float(count)
    figures["rounds"] = float(rounds)
    return figures


def run(quick: bool = False) -> dict[str, float]:
    """Start both servers, measure, stop them; return the figures."""
    cores = available_cores()
    server_core = SERVER_CORE if SERVER_CORE in cores else min(cores)
    pin(os.getpid(), (cores - {server_core}) or cores)
    sandbox_argv = [
        "-m",
        "ctct_partner_async.sandbox",
        "--port",
        "0",
        "--rate-limit",
        "0",
        "--daily-quota",
        "0",
        "--token-rate-limit",
        "0",
    ]
    bare_argv = [str(Path(__file__).resolve()), "--serve-bare"]
    try:
        with (
            server_process(sandbox_argv, server_core) as sandbox,
            server_process(bare_argv, server_core) as bare,
        ):
            return asyncio.run(bench(quick, sandbox, bare))
    finally:
        pin(os.getpid(), cores)


def report(figures: dict[str, float]) -> str:
    """Human-readable figures."""
    met = "met" if figures["sandbox_creates_per_s"] >= 2000 and figures["cpu_ratio"] <= 1.5 else "MISSED"
    return "\n".join(
        [
            f"sandbox: {figures['sandbox_creates_per_s']:8.0f} creates/s  "
            f"{figures['sandbox_cpu_us_per_create']:7.1f} us CPU/create",
            f"bare:    {figures['bare_creates_per_s']:8.0f} creates/s  "
            f"{figures['bare_cpu_us_per_create']:7.1f} us CPU/create",
            f"CPU ratio sandbox/bare: {figures['cpu_ratio']:.2f}",
            f"goals (>= 2000 creates/s, CPU ratio <= 1.5): {met}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_bare(args.ready_file))
        return 0
    figures = run(args.quick)
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
