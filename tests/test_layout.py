"""The module layout of sqsp/: no import circle (lazy imports inside functions count too), and
the small modules at the bottom stay at the bottom. Read from the source, nothing is imported."""
from __future__ import annotations

import ast
from pathlib import Path

SQSP = Path(__file__).resolve().parents[1] / "sqsp"


def _imports() -> dict[str, set[str]]:
    """Module -> the sqsp modules and the top-level packages it imports, anywhere in its code."""
    files = {".".join(p.relative_to(SQSP.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in SQSP.rglob("*.py")}
    out: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.stem == "__init__" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                found |= {module, *(f"{module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        out[name] = {m for m in found if m in files and m not in (name, "sqsp")} | \
                    {m.split(".")[0] for m in found if not m.startswith("sqsp")}
    return out


def test_no_import_circle():
    graph = _imports()
    inside = {m: {d for d in deps if d in graph} for m, deps in graph.items()}

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for d in inside[todo.pop()] - seen:
                seen.add(d)
                todo.append(d)
        return seen

    circles = sorted({tuple(sorted((a, b))) for a, deps in inside.items() for b in deps if a in reachable(b)})
    assert not circles, f"modules that import each other (directly or through others): {circles}"


def test_bottom_modules_stay_small_and_below():
    graph = _imports()
    # the report contract and the atomic writer: imported by train, tune and results alike, so
    # they import nothing of sqsp and nothing heavy (analysis/ reads record.py without torch)
    # (but errors.py, the leaf that only names the error types)
    assert not {d for d in graph["sqsp.errors"] if d.startswith("sqsp")}
    for name in ("sqsp.record", "sqsp.storage"):
        assert not {d for d in graph[name] if d.startswith("sqsp") and d != "sqsp.errors"}, name
        assert not graph[name] & {"torch", "ray", "pandas"}, name
    assert not graph["sqsp.device"] - {"sqsp.config", "torch", "contextlib", "warnings", "__future__"}
    # GAN training is imported by the zoo, never the other way round; nothing below tune imports Ray
    assert "sqsp.zoo" not in graph["sqsp.gan"] and "sqsp.gan" in graph["sqsp.zoo"]
    ray_users = sorted(m for m, deps in graph.items() if "ray" in deps)
    assert ray_users and all(m == "sqsp.tune" or m.startswith("sqsp.tune.") for m in ray_users), ray_users


def test_the_methods_config_reads_import_nothing_heavy_at_their_top():
    # config.py asks sqsp/methods.py its rules, and analysis/ reads configs without torch: what
    # trains (heads, losses) imports torch where it runs, below the module's top
    tree = ast.parse((SQSP / "methods.py").read_text())
    top = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names} | \
          {n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert top <= {"__future__", "typing", "errors", "specs"}, top
