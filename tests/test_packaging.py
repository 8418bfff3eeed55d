"""The install: the plain package holds every command, the agent package only the agent, the lock pins both.

CI installs both for real into fresh venvs and runs a command through them (scripts/smoke-install); these
checks keep the three files that describe the install from drifting apart between such runs."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]
SRC = ROOT / "src"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
AGENT = tomllib.loads((ROOT / "agent-package/pyproject.toml").read_text())
AGENT_FILES = AGENT["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
SERVER_ONLY = {"starlette", "uvicorn", "httptools", "uvloop", "websockets", "sqlalchemy", "alembic", "aiosqlite",
               "asyncpg", "cryptography", "rich", "prometheus-client"}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.split()[0]
    return pins


def test_the_agent_package_has_the_projects_version_and_only_the_agents_dependencies() -> None:
    """cloudassist-agent is released with cloudassist: same version, its dependencies a subset of the project's
    with the same bounds, none of them a server library."""
    assert AGENT["project"]["version"] == PROJECT["version"]
    agent_deps = set(AGENT["project"]["dependencies"])
    assert agent_deps <= set(PROJECT["dependencies"])
    assert {_name(dep) for dep in agent_deps} & SERVER_ONLY == set()


def test_the_plain_install_needs_no_extra_for_any_command() -> None:
    """Every third-party module that src/ imports (outside the test helpers) is a dependency of the plain
    install; the `test` extra holds only tools."""
    imported: set[str] = set()
    for path in (SRC / "cloudassist").rglob("*.py"):
        if path.name == "testing.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "cloudassist"}
    declared = {_name(dep).replace("-", "_") for dep in PROJECT["dependencies"]}
    assert third_party - declared == set()


def test_every_dependency_is_pinned_in_the_lock() -> None:
    """requirements.lock pins every dependency of the project and of its test extra (scripts/lock rewrites it)."""
    locked = _locked()
    wanted = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["test"]]
    assert [name for name in map(_name, wanted) if name.replace("_", "-") not in locked] == []


def _imports_of(module: str) -> set[str]:
    base = SRC / module.replace(".", "/")
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cloudassist"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if (SRC / node.module.replace(".", "/") / f"{alias.name}.py").exists())
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("cloudassist"))
    return found


def test_the_agent_package_holds_every_module_the_agent_imports() -> None:
    """Each cloudassist module reachable by import from cloudassist.agent is inside the agent package's files."""
    shipped = [target.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
               for target in AGENT_FILES.values()]
    seen, todo = set(), ["cloudassist.agent." + p.stem for p in (SRC / "cloudassist/agent").glob("*.py")]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(_imports_of(module))
    missing = [m for m in seen if not any(m == s or m.startswith(s + ".") for s in shipped)]
    assert missing == []
