"""The layout's import rules, read from the source (every import statement, lazy ones included).

- `detector.protocol` imports nothing else of `detector`: edge and backend both build on it.
- `detector.backend` imports only `detector.protocol` (and itself): a backend install has no
  OpenCV, onnxruntime or trackers, so one edge import would break it at run time.
- nothing outside `detector.cli` imports `detector.cli`: library code returns values.
- the edge (every other module) never imports `detector.backend`: an edge box has no web server.
- third-party imports are declared for the deployable that runs them: the protocol uses the
  base dependencies, the backend those plus the `backend` extra, the edge those plus `edge`
  (and the optional `export`/`cluster` extras, imported lazily where used).

Read statically rather than by importing, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "detector"

# Which extras each part may import from (besides the base dependencies).
EXTRAS = {
    "protocol": [],
    "backend": ["backend"],
    "edge": ["edge", "export", "cluster"],
    "cli": None,  # the command line dispatches to every part, lazily: any declared extra
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str, package: str = PACKAGE) -> str:
    """protocol, backend, cli, edge, or root (the bare package, which holds only its version)."""
    if module == package:
        return "root"
    sub = module.split(".")[1]
    if sub in ("protocol", "backend", "cli"):
        return sub
    if sub == "__main__":
        return "cli"  # `python -m detector` is the command line
    return "edge"


def imports_of(path: Path, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement; relative imports resolved.

    `from a import b` counts as importing `a.b` (a submodule or a name of `a`; the rules
    below only look at prefixes, so both read the same).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def declared_distributions(pyproject: Path, extras: list[str] | None) -> set[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    chosen = optional.keys() if extras is None else [e for e in extras if e in optional]
    requirements = list(project.get("dependencies", []))
    for extra in chosen:
        requirements += optional[extra]
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def violations(root: Path, package: str, pyproject: Path) -> list[str]:
    """Every import that breaks a rule, as 'file:line: module imports X (why)'."""
    dist_of = {name: {canonicalize_name(d) for d in dists} for name, dists in _packages_distributions().items()}
    allowed = {part: declared_distributions(pyproject, extras) for part, extras in EXTRAS.items()}
    problems = []
    for path in sorted((root / package).rglob("*.py")):
        module = module_name(path, root)
        part = part_of(module, package)
        for line, imported in imports_of(path, module, path.name == "__init__.py"):
            where = f"{path.relative_to(root)}:{line}: {module} imports {imported}"
            top = imported.split(".")[0]
            if top == package:
                target = part_of(".".join(imported.split(".")[:2]), package) if "." in imported else "root"
                if target == "root" or target == part:
                    continue
                if target == "cli":
                    problems.append(f"{where} (only the command line imports detector.cli)")
                elif part == "protocol":
                    problems.append(f"{where} (the protocol imports nothing else of {package})")
                elif part == "backend" and target != "protocol":
                    problems.append(f"{where} (the backend imports only {package}.protocol)")
                elif part == "edge" and target == "backend":
                    problems.append(f"{where} (the edge never imports {package}.backend)")
            elif top and top not in sys.stdlib_module_names and part in allowed:
                # A module that is not installed here (an optional extra) is matched by its name.
                dists = dist_of.get(top) or {canonicalize_name(top)}
                if not dists & allowed[part]:
                    extras = EXTRAS[part]
                    declared = "any extra" if extras is None else "+".join(["base", *extras])
                    problems.append(f"{where} ({top} is not declared in pyproject for {part}: {declared})")
    return problems


def _packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def test_the_source_keeps_the_import_rules():
    problems = violations(ROOT, PACKAGE, ROOT / "pyproject.toml")
    assert not problems, "\n".join(problems)


@pytest.fixture
def broken_tree(tmp_path) -> Path:
    """A small package that breaks every rule once (and keeps them elsewhere)."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\ndependencies = ["pyyaml"]\n'
        '[project.optional-dependencies]\nedge = ["numpy"]\nbackend = ["fastapi"]\n'
    )
    files = {
        "__init__.py": "",
        "protocol/__init__.py": "",
        "protocol/events.py": "import yaml\nfrom detector import values\n",
        "protocol/keys.py": "from . import events\nfrom ..config import site\n",
        "backend/__init__.py": "",
        "backend/app.py": "import fastapi\nfrom detector.protocol import events\ndef f():\n    import detector.scene\n",
        "backend/store.py": "import numpy\n",
        "cli/__init__.py": "from detector.backend import app\nimport fastapi, numpy\n",
        "config/__init__.py": "",
        "config/site.py": "from detector.cli import main\n",
        "values.py": "import numpy\nimport fastapi\n",
        "scene.py": "from .backend.store import x\n",
    }
    for name, text in files.items():
        path = tmp_path / "detector" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_each_broken_rule_is_reported(broken_tree):
    problems = violations(broken_tree, "detector", broken_tree / "pyproject.toml")
    expected = [
        "detector/backend/app.py:4: detector.backend.app imports detector.scene (the backend imports only",
        "detector/backend/store.py:1: detector.backend.store imports numpy (numpy is not declared",
        "detector/config/site.py:1: detector.config.site imports detector.cli.main (only the command line",
        "detector/protocol/events.py:2: detector.protocol.events imports detector.values (the protocol imports",
        "detector/protocol/keys.py:2: detector.protocol.keys imports detector.config.site (the protocol imports",
        "detector/scene.py:1: detector.scene imports detector.backend.store.x (the edge never imports",
        "detector/values.py:2: detector.values imports fastapi (fastapi is not declared",
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for problem, start in zip(problems, expected):
        assert problem.startswith(start), problem
