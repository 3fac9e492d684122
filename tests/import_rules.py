"""The import rule of docs/design.md, checked on source: every `import` in a package's modules
(lazy ones inside functions included) is read from the AST, resolved to a module of the package,
and checked against the layer table, which is read from docs/design.md itself so that the
document and the check cannot drift apart.

Rule: a module may import its own subpackage and anything in a lower layer; nothing in its own
layer's other subpackages and nothing above. No import cycles among modules at all."""
from __future__ import annotations

import ast
import re
from pathlib import Path

TABLE_START, TABLE_END = "<!-- layers:start -->", "<!-- layers:end -->"


def read_layers(design_md: Path) -> dict[str, int]:
    """{unit: layer} from the table between the markers: rows `| N | `unit`, `unit` | ... |`.
    A unit is a subpackage (`bench.rank`) or a top-level module (`bench.cli`)."""
    text = design_md.read_text()
    block = text[text.index(TABLE_START):text.index(TABLE_END)]
    layers = {}
    for row in block.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].isdigit():
            for unit in re.findall(r"`([\w.]+)`", cells[1]):
                layers[unit] = int(cells[0])
    return layers


def modules(root: Path, package: str) -> dict[str, Path]:
    """{dotted module name: file} for every .py under root/package."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file that names a module of `known`."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, is_pkg, node.level, node.module)
            targets = [f"{base}.{a.name}" for a in node.names] or [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, node.lineno))
    return found


def _absolute(name: str, is_pkg: bool, level: int, module: str | None) -> str:
    if not level:
        return module or ""
    parts = name.split(".")[: len(name.split(".")) - level + (1 if is_pkg else 0)]
    return ".".join(parts + ([module] if module else []))


def unit_of(module: str, layers: dict[str, int]) -> str | None:
    """The longest unit of the table that `module` is, or lies in. The root package's unit is its
    __init__ alone: every top-level module must be listed by name."""
    parts = module.split(".")
    for i in range(len(parts), 1, -1):
        if ".".join(parts[:i]) in layers:
            return ".".join(parts[:i])
    return module if module in layers else None


def violations(root: Path, package: str, layers: dict[str, int]) -> list[str]:
    """One line per broken rule: a module outside the table, an import sideways or upward, and
    every import cycle (its modules in order)."""
    mods = modules(root, package)
    graph = {m: imports(m, p, set(mods)) for m, p in mods.items()}
    errors = [f"{m}: not in the layer table of docs/design.md; add its package there"
              for m in mods if unit_of(m, layers) is None]
    for m, deps in graph.items():
        errors += [_rule(m, d, line, layers) for d, line in deps]
    graph_names = {m: [d for d, _ in v] for m, v in graph.items()}
    errors += [f"import cycle among {', '.join(c)}: break it by moving what both need into a "
               "lower module" for c in cycles(graph_names)]
    return [e for e in errors if e]


def _rule(module: str, target: str, line: int, layers: dict[str, int]) -> str | None:
    mine, theirs = unit_of(module, layers), unit_of(target, layers)
    if mine is None or theirs is None or mine == theirs:
        return None
    if layers[theirs] < layers[mine]:
        return None
    where = "above" if layers[theirs] > layers[mine] else "beside"
    return (f"{module} (line {line}) imports {target}: layer {layers[theirs]} `{theirs}` is "
            f"{where} layer {layers[mine]} `{mine}`; a module may import only lower layers "
            "(docs/design.md, 'Layers')")


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out
