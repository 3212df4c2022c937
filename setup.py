"""Build hook: the bundled sample goes into the package, so any install finds it.

The sample recording (``sample_videos/``) and its calibration
(``calibration/sample/``) live at the top of the repository, where the user
and ``make-sample`` find them.  An editable install reads them there; a wheel
or ``pip install .`` copies them into ``nirf_overlay/bundled/`` (same layout)
at build time, and ``nirf_overlay.sources.sample`` looks there next.
Everything else is in setup.cfg.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
#: top-level folders copied into the package (relative paths kept)
BUNDLED = ("sample_videos", "calibration/sample")


class build_py_with_sample(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "nirf_overlay" / "bundled"
        for rel in BUNDLED:
            src = HERE / rel
            if not src.is_dir():  # a source tree without the sample: the viewer shows the phantom
                continue
            dst = target / rel
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": build_py_with_sample})
