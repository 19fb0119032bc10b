"""Project tasks: ``nox`` runs lint, typing, architecture, tests and recipes; ``nox -s bench`` the benchmarks.

The tests run on every Python >= 3.11 installed here (``tests-3.11``, ``tests-3.12``, ...: ``nox -s tests``
runs them all); lint, typing, architecture and the benchmarks run once, on the oldest of them. A Python
counts as installed when ``pythonX.Y`` is on ``PATH`` and really runs (a pyenv shim for a version that is
not selected is on ``PATH`` but does not), or when it is the one running nox. With none, every session
fails at once saying so (``error_on_missing_interpreters`` also makes a session whose Python has gone
missing fail rather than skip).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import nox

nox.options.sessions = ["lint", "typing", "architecture", "tests", "recipes"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True  # a CI run with every session skipped must fail

OLDEST = (3, 11)  # pyproject's requires-python
NEWEST_LOOKED_FOR = (3, 19)
TEST_DEPS = [".[test,cli]"]


def _runs(executable: str, version: str) -> bool:
    """Whether ``executable`` starts and is Python ``version`` (``"3.12"``)."""
    probe = "import sys; print('%d.%d' % sys.version_info[:2])"
    try:
        done = subprocess.run([executable, "-c", probe], capture_output=True, text=True, timeout=30)  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.strip() == version


def installed_pythons() -> list[str]:
    """The versions (``"3.11"``, ...) of every installed Python from 3.11 on, oldest first."""
    found = []
    for minor in range(OLDEST[1], NEWEST_LOOKED_FOR[1] + 1):
        version = f"3.{minor}"
        executable = shutil.which(f"python{version}")
        if executable is not None and _runs(executable, version):
            found.append(version)
    running = sys.version_info[:2]
    if running >= OLDEST and f"{running[0]}.{running[1]}" not in found:
        found.append(f"{running[0]}.{running[1]}")  # nox's own interpreter: found by nox without PATH
    return sorted(found, key=lambda v: tuple(map(int, v.split("."))))


PYTHONS = installed_pythons()
ONE_PYTHON: str | bool = PYTHONS[0] if PYTHONS else False  # none: no virtualenv, the session just fails
NO_PYTHON = (
    f"no Python >= 3.11 found: looked for python3.{OLDEST[1]} to python3.{NEWEST_LOOKED_FOR[1]} on PATH "
    "(and at the interpreter running nox); install one (python.org, your package manager, pyenv, uv)"
)


def _require_python(session: nox.Session) -> None:
    if not PYTHONS:
        session.error(NO_PYTHON)


@nox.session(python=ONE_PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    _require_python(session)
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=ONE_PYTHON)
def typing(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the benchmarks."""
    _require_python(session)
    session.install("mypy>=1.13", "types-jsonschema>=4.23", "httpx>=0.27", *TEST_DEPS)
    session.run("mypy", "--strict", "ctct_partner_async", "tests", "benchmarks")


@nox.session(python=ONE_PYTHON)
def architecture(session: nox.Session) -> None:
    """import-linter: the layering of STYLE.md, and a sandbox that shares nothing with the client."""
    _require_python(session)
    session.install("import-linter>=2.1", ".")
    session.run("lint-imports")


@nox.session(python=PYTHONS or False)
def tests(session: nox.Session) -> None:
    """The whole test suite, in development mode so unclosed resources fail loudly, on each Python."""
    _require_python(session)
    session.install(*TEST_DEPS)
    session.run("pytest", "-m", "not recipe", *session.posargs, env={"PYTHONDEVMODE": "1"})


@nox.session(python=ONE_PYTHON)
def recipes(session: nox.Session) -> None:
    """The README's recipes that need a dependency of their own: arq, which pins redis-py below 6 (so
    this also runs the SDK's Redis code on redis-py 5)."""
    _require_python(session)
    session.install(*TEST_DEPS, "arq>=0.26")
    session.run(
        "pytest", "-m", "recipe", "tests/test_readme.py", *session.posargs, env={"PYTHONDEVMODE": "1"}
    )


@nox.session(python=ONE_PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmarks: ``nox -s bench`` (full) or ``nox -s bench -- --quick``."""
    _require_python(session)
    session.install(".[cli,redis]", "httpx>=0.27")
    session.run("python", "-m", "benchmarks", *session.posargs)
