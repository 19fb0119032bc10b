"""The command line and the settings objects."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from ctct_partner_async.sandbox import Faults, SandboxConfig
from ctct_partner_async.sandbox.cli import build_parser, config_from_args, main
from ctct_partner_async.sandbox.config import parse_fault_assignment

ROOT = Path(__file__).resolve().parents[2]


def test_parser_defaults_are_the_guessable_ones() -> None:
    """Defaults: 127.0.0.1:8911, sandbox-client / sandbox-secret / sandbox-api-key, 4/s, 10,000/day."""
    args = build_parser().parse_args([])
    config = config_from_args(args)
    assert (args.host, args.port) == ("127.0.0.1", 8911)
    assert (config.client_id, config.client_secret, config.api_key) == (
        "sandbox-client",
        "sandbox-secret",
        "sandbox-api-key",
    )
    assert (config.rate_limit, config.daily_quota, config.token_ttl, config.token_rate_limit) == (
        4,
        10_000,
        3600,
        1,
    )


def test_flags_reach_the_config() -> None:
    """Every flag lands in SandboxConfig, --fault is repeatable."""
    args = build_parser().parse_args(
        [
            "--client-id",
            "c",
            "--client-secret",
            "s",
            "--api-key",
            "k",
            "--token-ttl",
            "60",
            "--rate-limit",
            "0",
            "--daily-quota",
            "0",
            "--token-rate-limit",
            "2",
            "--seed",
            "9",
            "--fault",
            "create_503=0.25",
            "--fault",
            "token_outage=true",
            "--fault",
            "fault_operations=create_account,set_plan",
        ]
    )
    config = config_from_args(args)
    assert (config.client_id, config.client_secret, config.api_key, config.token_ttl) == ("c", "s", "k", 60)
    assert (config.rate_limit, config.daily_quota, config.token_rate_limit, config.seed) == (0, 0, 2, 9)
    assert config.faults == Faults(
        create_503=0.25, token_outage=True, fault_operations=("create_account", "set_plan")
    )


@pytest.mark.parametrize(
    "fault", ["create_503=2", "nonsense=1", "latency", "latency=-1", "token_outage=maybe"]
)
def test_bad_fault_flags_exit_2(fault: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad --fault is a usage error (exit status 2) naming the problem."""
    with pytest.raises(SystemExit) as exc:
        main(["--fault", fault])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "fault" in err.lower() or "NAME=VALUE" in err


def test_fault_assignment_parsing() -> None:
    """name=value strings become typed fault values."""
    assert parse_fault_assignment("error_502 = 0.5") == ("error_502", 0.5)
    assert parse_fault_assignment("token_outage=off") == ("token_outage", False)
    assert parse_fault_assignment("fault_operations=create_account") == (
        "fault_operations",
        ("create_account",),
    )


def test_faults_update_is_all_or_nothing() -> None:
    """Faults.update changes nothing when any value is bad."""
    faults = Faults()
    with pytest.raises(ValueError):
        faults.update({"latency": 0.5, "error_500": "x"})
    assert faults == Faults()
    faults.update({"latency": "0.5", "token_outage": 1, "fault_operations": ["a"]})
    assert (faults.latency, faults.token_outage, faults.fault_operations) == (0.5, True, ("a",))


@pytest.mark.parametrize(
    "bad", [{"token_ttl": 0}, {"rate_limit": -1}, {"page_size_default": 5}, {"request_log_size": -1}]
)
def test_config_rejects_nonsense(bad: dict[str, float]) -> None:
    """SandboxConfig refuses values that cannot work."""
    with pytest.raises(ValueError):
        SandboxConfig(**bad)  # type: ignore[arg-type]


async def test_module_runs_prints_banner_writes_ready_file_and_stops(tmp_path: Path) -> None:
    """python -m ctct_partner_async.sandbox --port 0 prints URLs, credentials and PORT=, writes the ready
    file, serves requests, and exits 0 on SIGTERM."""
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ctct_partner_async.sandbox",
        "--port",
        "0",
        "--ready-file",
        str(ready),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("PORT="):
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
            assert line, "the sandbox exited before listening"
            lines.append(line.decode().strip())
        port = int(lines[-1].removeprefix("PORT="))
        banner = "\n".join(lines)
        for expected in (
            f"http://127.0.0.1:{port}/v3",
            f"http://127.0.0.1:{port}/oauth2/token",
            f"http://127.0.0.1:{port}/v2",
            "sandbox-client",
            "sandbox-secret",
            "sandbox-api-key",
        ):
            assert expected in banner
        assert lines[0] == f"Sandbox listening on http://127.0.0.1:{port}"
        assert ready.read_text().strip() == str(port)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/_sandbox/stats") as r,
        ):
            assert r.status == 200
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=20)
    assert code == 0
