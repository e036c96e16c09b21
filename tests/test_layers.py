"""The package's import structure (docs/design.md): no import upward, no cycle, at most three plain top-level modules.

Every import counts, including those inside functions and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
import pathlib

import ssmctl

PACKAGE = pathlib.Path(ssmctl.__file__).parent
# Lower rank = lower layer; a module may import its own layer and the ones below it.
RANK = {"errors": 0, "report": 0, "systems": 1, "models": 2, "analysis": 3, "engine": 4, "checkpoints": 5,
        "plot": 6, "cli": 7}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c in modules and c != name)
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_module_imports_a_layer_above_its_own():
    modules = _modules()
    upward = []
    for name, path in modules.items():
        layer = _layer(name)
        if layer is None:  # ssmctl/__init__.py: the public API gathers every layer
            continue
        assert layer in RANK, f"{name} lies in no layer of docs/design.md"
        for target in _imports(name, path, modules):
            target_layer = _layer(target)
            if target_layer is None:
                if layer != "cli":  # only the top layer may read the public API (its __version__)
                    upward.append(f"{name} -> ssmctl (the public API)")
            elif RANK[target_layer] > RANK[layer]:
                upward.append(f"{name} -> {target}")
    assert not upward, "imports that run upward:\n" + "\n".join(sorted(upward))


def test_at_most_three_plain_top_level_modules():
    plain = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(plain) <= 3, plain


def test_no_import_cycle_between_modules():
    modules = _modules()
    graph = {name: {t for t in _imports(name, path, modules) if not name.startswith(t + ".")}
             for name, path in modules.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle.extend(stack[stack.index(nxt):] + [node, nxt] if nxt in stack else [node, nxt])
                return True
            if nxt not in state and visit(nxt, stack + [node]):
                return True
        state[node] = 2
        return False

    for start in graph:
        if start not in state and visit(start, []):
            break
    assert not cycle, " -> ".join(cycle)


def test_plot_is_usable_after_import_ssmctl():
    assert callable(ssmctl.plot.eigenvalues) and callable(ssmctl.plot.simulation_figure)
