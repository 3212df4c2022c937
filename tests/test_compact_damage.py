"""`record --compact` verifies before it converts: a segment that does not decode whole
(fewer frames than segments.csv and frames.csv list) is refused, named, and left as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nirf_overlay.recording import Recorder, format as fmt, read_session
from test_recording import info_for, synthetic_pairs

ROOT = Path(__file__).resolve().parents[1]


def _record(out, n=40):
    rec = Recorder(out, info_for(), min_free_bytes=0, compact=False, segment_seconds=0.5)
    for p in synthetic_pairs(n, seed=3):
        assert rec.submit(p, block=True)
    assert not rec.stop().error
    return read_session(out).segments


def test_compact_refuses_a_truncated_segment_and_names_it(tmp_path):
    out = tmp_path / "s"
    segments = _record(out)
    assert len(segments) >= 3
    victim = out / segments[1].nir_file
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) * 6 // 10])  # cut mid-file: fewer frames decode
    cut = victim.read_bytes()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-m", "nirf_overlay", "record", "--compact", str(out)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, (p.returncode, p.stderr)
    last = p.stderr.strip().splitlines()[-1]
    assert segments[1].nir_file in last and f"of its {segments[1].frames} frames" in last, last
    assert "Traceback" not in p.stderr
    # the damaged file is untouched; the whole ones were converted
    assert victim.read_bytes() == cut and not fmt.is_ffv1(str(victim))
    for seg in segments:
        if seg.nir_file != segments[1].nir_file:
            assert fmt.is_ffv1(str(out / seg.nir_file)), seg.nir_file
