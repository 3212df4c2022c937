"""The core runs without Qt: only nirf_overlay.gui may import PyQt5."""

import subprocess
import sys
import textwrap

BLOCK_QT = textwrap.dedent("""
    import importlib.abc, sys

    class BlockQt(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("PyQt5", "PySide2", "PySide6", "qtpy"):
                raise ImportError(f"Qt is blocked in the core: {name}")
            return None

    sys.meta_path.insert(0, BlockQt())
""")


def test_every_core_module_imports_without_qt():
    code = BLOCK_QT + textwrap.dedent("""
        import importlib, pkgutil
        import nirf_overlay
        names = [m.name for m in pkgutil.walk_packages(nirf_overlay.__path__, "nirf_overlay.")
                 if not m.name.startswith("nirf_overlay.gui") and m.name != "nirf_overlay.__main__"]
        for name in names:
            importlib.import_module(name)
        assert not any(k.startswith("PyQt5") for k in sys.modules)
        print(len(names))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert int(p.stdout.strip().splitlines()[-1]) > 30


def test_process_runs_with_qt_blocked(tmp_path):
    code = BLOCK_QT + textwrap.dedent(f"""
        from nirf_overlay.cli import main
        rc = main(["process", "--phantom", "--size", "160x96", "--out", {str(tmp_path)!r},
                   "--no-video", "--no-progress", "--range", ":0.2"])
        raise SystemExit(rc)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "metrics.csv").read_text().count("\n") >= 2


def test_gui_is_the_only_package_naming_qt():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "nirf_overlay"
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if "gui" not in p.relative_to(root).parts
                 and any(line.lstrip().startswith(("import PyQt5", "from PyQt5"))
                         for line in p.read_text().splitlines())]
    assert offenders == []


# -- layers and cycles ---------------------------------------------------------------------------
#: Each unit (a top-level module or package of nirf_overlay) may import units of
#: lower layers only; units in one layer are independent of each other.  Every
#: import statement counts, also those inside functions.
LAYERS = (
    ("privacy",),
    ("errors", "frame"),
    ("shutdown", "outputs"),
    ("settings",),
    ("calibration", "processing"),
    ("phantom",),
    ("sources",),
    ("recording",),
    ("engine", "export", "snapshot", "evaluate_report", "evaluate_tower", "bench_figures"),
    ("batch", "bench", "evaluate"),
    ("gui",),
    ("cli",),
)


def _imports():
    """{module: {imported nirf_overlay module, ...}} from every import statement."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "nirf_overlay"
    modules = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        name = ".".join(parts)
        package = parts if is_pkg else parts[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("nirf_overlay"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("nirf_overlay"):
                    continue
                found.add(target)
                # `from . import x` may name a submodule
                found.update(f"{target}.{a.name}" for a in node.names)
        modules[name] = found
    return {m: {t for t in ts if t in modules and t != m} for m, ts in modules.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_units_import_only_lower_layers():
    layer_of = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    graph = _imports()
    units = {_unit(m) for m in graph} - {"", "__main__"}
    assert units <= set(layer_of), f"units missing from LAYERS: {sorted(units - set(layer_of))}"
    bad = sorted(
        f"{m} imports {t}"
        for m, ts in graph.items() for t in ts
        if _unit(m) in layer_of and _unit(t) in layer_of and _unit(m) != _unit(t)
        and layer_of[_unit(t)] >= layer_of[_unit(m)]
    )
    assert bad == []


def test_no_import_cycles_between_modules():
    graph = _imports()
    # a package's __init__ re-exporting its own modules is not a cycle of ideas
    edges = {m: {t for t in ts if not (m.startswith(t + ".") or t.startswith(m + "."))}
             for m, ts in graph.items()}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
                cycles.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    assert cycles == []
