"""The domain may import only the standard library and `eventsourcing.domain`.

import-linter checks the layers; this test checks the domain's third-party imports precisely,
which a forbidden-modules list cannot express.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
ALLOWED_THIRD_PARTY = {"eventsourcing.domain"}


def imported_modules(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(), filename=str(source))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_the_domain_imports_only_the_standard_library_and_eventsourcing_domain() -> None:
    offenders = {
        f"{path.relative_to(DOMAIN.parent)}: {module}"
        for path in DOMAIN.rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] not in sys.stdlib_module_names
        and module.split(".")[0] != "domain"
        and module not in ALLOWED_THIRD_PARTY
    }
    assert not offenders, offenders
