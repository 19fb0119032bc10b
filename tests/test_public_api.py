"""The public surface is true: ``__all__`` is exactly the API, every error class is exported, and the
README names no internal module."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import ctct_partner_async
from ctct_partner_async import _errors

README = Path(__file__).resolve().parent.parent / "README.md"
PUBLIC_SUBMODULES = {
    "cli",
    "journal",
    "notifications",
    "sandbox",
    "shared",
    "sources",
    "telemetry",
    "testing",
}


def test_star_import_gives_every_name_in_all() -> None:
    """``from ctct_partner_async import *`` works and binds exactly ``__all__``."""
    namespace: dict[str, object] = {}
    exec("from ctct_partner_async import *", namespace)  # noqa: S102 (a fixed statement)
    namespace.pop("__builtins__")
    assert set(namespace) == set(ctct_partner_async.__all__)
    assert len(ctct_partner_async.__all__) == len(set(ctct_partner_async.__all__))


def test_all_is_exactly_the_public_names() -> None:
    """Every public name in the package namespace is in ``__all__``, but for the public submodules."""
    public = {
        name
        for name, value in vars(ctct_partner_async).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(ctct_partner_async.__all__) - {"__version__"}
    # (pytest's assertion rewriting adds "@py_builtins" and "@pytest_ar" where it loads the plugin)
    modules = {
        name
        for name, v in vars(ctct_partner_async).items()
        if isinstance(v, types.ModuleType) and name.isidentifier()
    }
    assert {m for m in modules if not m.startswith("_")} <= PUBLIC_SUBMODULES


def test_internal_modules_are_private() -> None:
    """Every top-level module of the package is private (``_name``) unless it is a documented public one."""
    names = {info.name for info in pkgutil.iter_modules(ctct_partner_async.__path__)}
    assert {n for n in names if not n.startswith("_")} == PUBLIC_SUBMODULES
    for name in PUBLIC_SUBMODULES:
        importlib.import_module(f"ctct_partner_async.{name}")


def test_every_error_class_is_exported_and_in_the_readme_tree() -> None:
    """Each exception class of the error tree is importable from the package and drawn in the README."""
    classes = {
        name
        for name, value in vars(_errors).items()
        if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == _errors.__name__
    }
    assert classes == set(_errors.__all__) - {"FieldError"}
    readme = README.read_text()
    tree = readme[readme.index("## Errors") :]
    for name in classes:
        assert getattr(ctct_partner_async, name) is getattr(_errors, name)
        assert re.search(rf"(^|[─ ]){name}\b", tree, re.M), f"{name} missing from the README error tree"


def test_readme_names_no_private_module() -> None:
    """Users read the README: it never sends them to ``ctct_partner_async._something``."""
    leaks = re.findall(r"ctct_partner_async\._\w+", README.read_text())
    assert leaks == []


def run_readme_example(heading: str) -> tuple[str, str]:
    """The first Python block under ``heading`` in the README, run as printed: (its code, its stdout)."""
    section = README.read_text().split(heading, 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    done = subprocess.run([sys.executable, "-c", code.group(1)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return code.group(1), done.stdout


def test_readme_mock_transport_example_runs_as_printed() -> None:
    """The README's MockTransport example runs as printed and prints what its comment says."""
    _, stdout = run_readme_example("### Testing your code without a network")
    assert stdout.splitlines()[0] == "created a07e1my9tbw0 1"


def test_readme_token_blip_example_runs_as_printed() -> None:
    """The README's token example: two failed token requests, then the call succeeds, as its comments say."""
    code, stdout = run_readme_example("## Tokens: nobody sees an expired JWT")
    promised = re.findall(r"print\(.*\)  # (.*)", code)
    assert len(promised) == 2 and stdout.splitlines() == promised


def test_readme_rerun_example_runs_as_printed() -> None:
    """The README's journal-lock and adopt-existing example runs as printed and prints its comments."""
    code, stdout = run_readme_example("### Reruns: the journal, its lock")
    promised = re.findall(r"print\(.*\)  # (.*)", code)
    assert stdout.splitlines() == promised
