"""The pipeline's outputs on fixed inputs are the frozen ones in tests/frozen/.

A refactoring must leave ``metrics.csv``, ``rims.csv`` and every rim mask of
the bundled sample, three phantoms, a plane check and a recorded session bit
for bit as they were.  A change meant to alter results regenerates them with
``python3 tests/frozen/freeze.py --update`` and says so in its commit.
"""

import subprocess
import sys
from pathlib import Path

import pytest

FREEZE = Path(__file__).resolve().parent / "frozen" / "freeze.py"


@pytest.mark.slow
def test_outputs_are_the_frozen_ones():
    proc = subprocess.run([sys.executable, str(FREEZE), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
