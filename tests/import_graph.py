"""The import graph of our packages, read from the source (ast) without importing anything, and
the layout rules it must keep: which package may import which, and the order of the billing
domain's subpackages. tests/test_import_graph.py applies them to the repository."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("billing_jobs", "ingestion", "ml", "orchestration", "simulation")

# What each package may import besides the standard library and third-party packages
# (the layout table of docs/architecture.md).
MAY_IMPORT: dict[str, frozenset[str]] = {
    "billing_jobs": frozenset({"billing_jobs"}),
    "ingestion": frozenset({"ingestion", "billing_jobs"}),
    "ml": frozenset({"ml"}),
    "simulation": frozenset({"simulation", "billing_jobs", "ingestion"}),
    "orchestration": frozenset(PACKAGES),
}
# Third-party packages (and their `<name>_*` plugins, e.g. dagster_dbt) only one of ours may import.
ONLY_IN: dict[str, str] = {"dagster": "orchestration"}

# billing_jobs from the bottom up: a module may import its own part and the parts below it,
# never one above it, nor another part of its own level (catalog and customers know nothing of
# each other). The root modules are one level and may use each other.
BILLING_LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"money", "errors", "periods", "storage", "__init__"}),
    frozenset({"ledger"}),
    frozenset({"tax"}),
    frozenset({"inputs"}),  # validators of outside input: the schema's limits, GSTIN rules
    frozenset({"catalog", "customers"}),
    frozenset({"invoicing"}),
    frozenset({"subscriptions"}),
    frozenset({"payments"}),
    frozenset({"retention"}),  # what expires, and a customer's erasure
    frozenset({"service"}),  # the facade the simulator drives billing through
)
ROOT_LEVEL = BILLING_LAYERS[0]


@dataclass(frozen=True)
class Import:
    """`source` imports `target` (both dotted module names), at module level or not."""

    source: str
    target: str
    line: int
    module_level: bool  # False: inside a function or an `if TYPE_CHECKING:` block


def module_files(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the packages under `root`."""
    out: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, int, bool]]:
    """(dotted name, line, module level) of every import statement, at any depth."""
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for part in child.body:
                    visit_one(part, False)
                for part in child.orelse:
                    visit_one(part, module_level)
            else:
                visit_one(child, module_level)

    def visit_one(child: ast.AST, module_level: bool) -> None:
        level = module_level and not isinstance(
            child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        if isinstance(child, ast.Import):
            out.extend((a.name, child.lineno, level) for a in child.names)
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (child.level - 1)]
                origin = ".".join([*base, *([child.module] if child.module else [])])
            else:
                origin = child.module or ""
            # `from a import b`: b may be a submodule (then that is what is imported) or a
            # name defined in a; `imports_of` decides which from the modules it knows.
            out.extend((f"{origin}.{a.name}|{origin}", child.lineno, level) for a in child.names)
        visit(child, level)

    visit(tree, True)
    return out


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module of ours a dotted name lands in (its longest known prefix), or None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(modules: Mapping[str, Path]) -> tuple[list[Import], list[tuple[str, str, int]]]:
    """Every import between our modules, and every (module, third-party top-level name, line)
    outside them."""
    ours: list[Import] = []
    others: list[tuple[str, str, int]] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for raw, line, level in _imported_names(tree, module, path.name == "__init__.py"):
            name, _, origin = raw.partition("|")
            target = name if name in modules else _resolve(origin or name, modules)
            if target is None:
                others.append((module, (origin or name).split(".")[0], line))
            elif target != module:
                ours.append(Import(module, target, line, level))
    return ours, others


def graph_of(imports: Iterable[Import], module_level_only: bool = False) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if module_level_only and not imp.module_level:
            continue
        graph.setdefault(imp.source, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    return graph


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (or a module
    importing itself), each sorted, in sorted order (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    succ = {v: sorted(ws) for v, ws in graph.items()}
    for ws in list(succ.values()):
        for w in ws:
            succ.setdefault(w, [])
    for root in sorted(succ):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            if i < len(succ[v]):
                work.append((v, i + 1))
                w = succ[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            for w in succ[v]:
                if w in on_stack:
                    low[v] = min(low[v], low[w])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1 or v in succ[v]:
                    found.append(sorted(component))
    return sorted(found)


def _billing_part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _billing_level(part: str) -> int | None:
    for level, names in enumerate(BILLING_LAYERS):
        if part in names:
            return level
    return None


def layout_violations(
    imports: Iterable[Import], third_party: Iterable[tuple[str, str, int]] = ()
) -> list[str]:
    """Every import against the one-way rule, the billing layers or ONLY_IN, as a message."""
    out: list[str] = []
    for imp in imports:
        src_pkg, dst_pkg = imp.source.split(".")[0], imp.target.split(".")[0]
        where = f"{imp.source}:{imp.line} imports {imp.target}"
        if dst_pkg not in MAY_IMPORT.get(src_pkg, frozenset()):
            allowed = ", ".join(sorted(MAY_IMPORT.get(src_pkg, ()))) or "nothing of ours"
            out.append(f"{where}: {src_pkg} may import only {allowed}")
            continue
        if src_pkg != "billing_jobs" or dst_pkg != "billing_jobs":
            continue
        src, dst = _billing_part(imp.source), _billing_part(imp.target)
        if src == dst:
            continue
        src_level, dst_level = _billing_level(src), _billing_level(dst)
        if src_level is None or dst_level is None:
            unknown = src if src_level is None else dst
            out.append(f"{where}: billing_jobs.{unknown} is in no layer of BILLING_LAYERS")
        elif dst_level > src_level:
            out.append(f"{where}: {src} is below {dst} in billing_jobs and may not import it")
        elif dst_level == src_level and src_level != 0:
            out.append(f"{where}: {src} and {dst} are peers in billing_jobs and stay independent")
    for module, name, line in third_party:
        owner = next((o for n, o in ONLY_IN.items() if name == n or name.startswith(f"{n}_")), None)
        if owner is not None and module.split(".")[0] != owner:
            out.append(f"{module}:{line} imports {name}: only {owner} may")
    return out
