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
