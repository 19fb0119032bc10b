"""Project tasks: ``nox`` runs lint, typing, architecture and tests; ``nox -s bench`` the benchmarks."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typing", "architecture", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True  # a CI run with every session skipped must fail

PYTHON = "3.11"
TEST_DEPS = [".[test,cli]"]


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the benchmarks."""
    session.install("mypy>=1.13", "types-jsonschema>=4.23", "httpx>=0.27", *TEST_DEPS)
    session.run("mypy", "--strict", "ctct_partner_async", "tests", "benchmarks")


@nox.session(python=PYTHON)
def architecture(session: nox.Session) -> None:
    """import-linter: the layering of STYLE.md, and a sandbox that shares nothing with the client."""
    session.install("import-linter>=2.1", ".")
    session.run("lint-imports")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite, in development mode so unclosed resources fail loudly."""
    session.install(*TEST_DEPS)
    session.run("pytest", *session.posargs, env={"PYTHONDEVMODE": "1"})


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmarks: ``nox -s bench`` (full) or ``nox -s bench -- --quick``."""
    session.install(".[cli]", "httpx>=0.27")
    session.run("python", "-m", "benchmarks", *session.posargs)
