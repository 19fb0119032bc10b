"""The pytest plugin's ctct_sandbox fixture, as a user's test suite would use it, here and in a throwaway
project run by a pytest of its own (strict mode, no configuration, with and without pytest-asyncio)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ctct_partner_async import NewAccount
from ctct_partner_async.testing import INSTALL_HINT, SandboxFixture


async def test_fixture_gives_a_ready_client(ctct_sandbox: SandboxFixture) -> None:
    """The fixture's client talks to the fixture's sandbox with no setup at all."""
    result = await ctct_sandbox.client.accounts.create(
        NewAccount(
            contact_email="a@example.com", login_name="plugin_user", password="s3cret-pass", country_code="GB"
        )
    )
    assert [a["encoded_account_id"] for a in ctct_sandbox.sandbox.accounts()] == [result.encoded_account_id]
    assert ctct_sandbox.handle.url.startswith("http://127.0.0.1:")


@pytest.mark.ctct_sandbox(token_ttl=120, seed=3)
async def test_marker_passes_settings(ctct_sandbox: SandboxFixture) -> None:
    """Settings given with the ctct_sandbox marker reach the sandbox."""
    assert ctct_sandbox.sandbox.config.token_ttl == 120
    assert ctct_sandbox.sandbox.config.seed == 3
    assert ctct_sandbox.sandbox.config.rate_limit == 0


@pytest.mark.ctct_sandbox(rate_limit=4)
async def test_fixture_client_takes_the_sandbox_rate_limit(ctct_sandbox: SandboxFixture) -> None:
    """A sandbox limited to 4/s gets a client limited to 4/s (and no limit with an unlimited sandbox)."""
    assert ctct_sandbox.sandbox.config.rate_limit == 4
    assert ctct_sandbox.client.limiter.rate == 4


async def test_fixture_client_is_unlimited_with_an_unlimited_sandbox(ctct_sandbox: SandboxFixture) -> None:
    """The default sandbox has no rate limit, and neither has its client."""
    assert ctct_sandbox.client.limiter.rate is None


# -- the plugin in a project of its own: a subprocess pytest run --------------------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"
PLAIN_TEST = "async def test_not_using_the_fixture():\n    pass\n"


def readme_fixture_test() -> str:
    """The README's example test for the fixture, as printed."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    found = [b for b in blocks if "ctct_sandbox" in b and re.search(r"^async def test_", b, re.MULTILINE)]
    assert found, "README.md shows no ```python block with an `async def test_...(ctct_sandbox)`"
    return str(found[0])


def run_pytest(project: Path, *args: str, autoload: bool = True) -> subprocess.CompletedProcess[str]:
    """pytest in ``project``, configured by nothing (``-c /dev/null``; strict mode is pytest-asyncio's
    default). ``autoload=False``: only the plugins named with ``-p``, as if nothing else were installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PY_COLORS"))}
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    command = [sys.executable, "-m", "pytest", "-c", os.devnull, "--rootdir", str(project), "-p",
               "no:cacheprovider", "-rA", *args]  # fmt: skip
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120)


def only_pytest_asyncio_and_this_package(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_pytest(project, "-p", "asyncio", "-p", "ctct_partner_async", *args, autoload=False)


def test_the_readme_fixture_test_runs_as_printed_in_strict_mode(tmp_path: Path) -> None:
    """The README's fixture test passes in a project with only pytest and pytest-asyncio and no
    configuration (strict mode), with no marker written."""
    (tmp_path / "test_readme.py").write_text(readme_fixture_test())
    run = only_pytest_asyncio_and_this_package(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "mode=Mode.STRICT" in run.stdout
    assert re.search(r"PASSED test_readme\.py::test_\w+", run.stdout)
    assert " 1 passed" in run.stdout


def test_only_tests_using_the_fixture_are_marked(tmp_path: Path) -> None:
    """The plugin marks the coroutine tests that use ctct_sandbox ``asyncio``, and no other test."""
    (tmp_path / "test_readme.py").write_text(readme_fixture_test())
    (tmp_path / "test_plain.py").write_text(PLAIN_TEST)
    run = only_pytest_asyncio_and_this_package(tmp_path, "--collect-only", "-q", "-m", "asyncio")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_readme.py::" in run.stdout and "test_plain.py" not in run.stdout


@pytest.mark.parametrize(
    ("plugins", "autoload"),
    [(["-p", "no:asyncio"], True), (["-p", "ctct_partner_async"], False)],
    ids=["disabled with -p no:asyncio", "not installed (only this plugin loaded)"],
)
def test_without_pytest_asyncio_the_fixture_says_what_to_install(
    tmp_path: Path, plugins: list[str], autoload: bool
) -> None:
    """Without pytest-asyncio, a test using the fixture errors at setup with the install hint, not
    "fixture 'ctct_sandbox' not found"."""
    (tmp_path / "test_readme.py").write_text(readme_fixture_test())
    run = run_pytest(tmp_path, *plugins, autoload=autoload)
    assert run.returncode == 1, run.stdout + run.stderr
    assert INSTALL_HINT in run.stdout
    assert "pip install pytest-asyncio" in run.stdout
    assert "not found" not in run.stdout
    assert "ERROR at setup of test_" in run.stdout
