"""The sandbox stands apart: standard library and aiohttp only (and cryptography, imported only when it signs
a webhook, for the ``[webhooks]`` extra), nothing from the rest of the SDK."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import ctct_partner_async.sandbox as sandbox_package

PACKAGE = Path(sandbox_package.__file__).resolve().parent


def imported_roots(path: Path) -> set[str]:
    """Top-level names a module imports; relative imports that leave the sandbox package show as '..'."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1:
                roots.add("..")
            elif node.level == 0 and node.module is not None:
                roots.add(node.module.split(".")[0])
    return roots


def test_sandbox_imports_only_stdlib_and_aiohttp() -> None:
    """No sandbox module imports the SDK (absolutely or via '..'), or any third-party package but aiohttp;
    only the signer imports cryptography."""
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) > 10
    for module in modules:
        foreign = {
            root
            for root in imported_roots(module)
            if root not in sys.stdlib_module_names and root != "aiohttp"
        }
        if module.name == "signing.py":
            foreign.discard("cryptography")
        assert foreign == set(), f"{module.name} imports {foreign}"
