"""The import graph stays one-way: the lab's package has no cycle, and the shared library
never imports lab code (the services run without the lab). Read with `ast`, not by importing,
so an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "infra" / "lab" / "reviewlab_lab"
COMMON = REPO / "services" / "common" / "reviewlab_common"


def module_name(path: Path, root: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str, package: bool) -> set[str]:
    """Every module PATH (module NAME) imports, absolute or relative, wherever it does."""
    found: set[str] = set()
    here = name if package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{anchor}.{base}" if base else anchor
            # `from package import module` imports the module (the package only runs its
            # __init__ on the way); `from module import name` imports the module.
            found |= {f"{base}.{alias.name}" for alias in node.names}
            found.add(f"{base}.*")
    return found


def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = imports(path, name, path.name == "__init__.py")
        named = {m for m in found if m in modules}
        # A `from X import name` whose names are not modules of X imports X itself.
        for wildcard in (m for m in found if m.endswith(".*")):
            base = wildcard[:-2]
            if base in modules and not any(m.startswith(base + ".") for m in named):
                named.add(base)
        edges[name] = named - {name}
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle, as the modules along it; [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_the_lab_package_has_no_import_cycle() -> None:
    edges = graph(LAB)
    assert len(edges) > 30  # the walk found the package
    found = cycle(edges)
    assert found == [], "import cycle: " + " -> ".join(found)


def test_no_shared_library_module_imports_lab_code() -> None:
    for path in COMMON.rglob("*.py"):
        name = module_name(path, COMMON)
        lab = {
            m
            for m in imports(path, name, path.name == "__init__.py")
            if m.startswith("reviewlab_lab")
        }
        assert not lab, f"{name} imports {sorted(lab)}"


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []


# What only the lab does: making secrets, provisioning nodes, writing node configs, knowing
# where the lab's tree and its software are. None of it is defined in the shared library.
LAB_ONLY_NAMES = frozenset(
    {
        "generate",  # secrets: reviewlab_lab.secretfile
        "ensure",
        "provision",  # the media bucket: reviewlab_lab.provision
        "shield_read_policy",
        "ACL",  # Redis users: reviewlab_lab.redisacl
        "acl_users",
        "Install",  # the lab's software: reviewlab_lab.install
        "INSTALL_PATH",
        "DEFAULT_PATH",  # the topology file: reviewlab_lab.paths.TOPOLOGY_PATH
        "replace_records",  # DNS records by signed dynamic update: reviewlab_lab.dnsrecords
    }
)


def top_level_names(path: Path) -> set[str]:
    """The functions, classes and variables a module defines at its top level."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found |= {t.id for t in targets if isinstance(t, ast.Name)}
    return found


def test_the_shared_library_defines_no_lab_only_name() -> None:
    for path in COMMON.rglob("*.py"):
        lab_only = top_level_names(path) & LAB_ONLY_NAMES
        assert not lab_only, f"{module_name(path, COMMON)} defines {sorted(lab_only)}"


def test_the_shared_library_finds_no_file_outside_its_package() -> None:
    # A service is told where the topology and its model are (settings), wherever it is
    # installed; only its own package data (the migrations) is found beside its code.
    for path in COMMON.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        climbs = [
            n.lineno
            for n in ast.walk(tree)
            if isinstance(n, ast.Attribute)
            and (n.attr == "parents" or (n.attr == "parent" and isinstance(n.value, ast.Attribute)))
        ]
        assert not climbs, f"{module_name(path, COMMON)} climbs out of its package at {climbs}"
