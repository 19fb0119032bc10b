"""A real ``redis-server`` for the tests: started on a free loopback port in a temp dir, stopped after."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio

MISSING = (
    "redis-server is not installed: the shared-state tests need a real one "
    "(Debian/Ubuntu: apt-get install redis-server)"
)
STARTUP_TIMEOUT = 10.0
POLL = 0.01


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(executable: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    args = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir)]  # fmt: skip
    return subprocess.Popen(args, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603


async def wait_until_ready(process: subprocess.Popen[bytes], url: str) -> None:
    """Poll PING until the server answers; fail with its output if it exits or takes too long."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + STARTUP_TIMEOUT
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=1.0)
    try:
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                raise RuntimeError(f"redis-server exited with {process.returncode}:\n{output}")
            try:
                if await client.ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                pass
            if loop.time() > give_up:
                raise RuntimeError(f"redis-server did not answer PING at {url} in {STARTUP_TIMEOUT}s")
            await asyncio.sleep(POLL)
    finally:
        await client.aclose()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout:
        process.stdout.close()


@asynccontextmanager
async def running_redis(workdir: Path) -> AsyncIterator[str]:
    """A fresh redis-server for the block: yields its URL ``redis://127.0.0.1:N/0``."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise FileNotFoundError(MISSING)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    process = start(executable, port, workdir)
    try:
        await wait_until_ready(process, url)
        yield url
    finally:
        stop(process)
