"""Keeping what is on screen: snapshots (S), session recordings (R) and markers (M).

The GUI thread only copies the picture and asks: the snapshot files are
written on a helper thread (:class:`~nirf_overlay.gui.tasks.BackgroundTasks`)
and the engine starts and stops its recorder on its own threads.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from pathlib import Path
from typing import Callable, Optional

from ..engine import Engine
from ..settings import Settings
from ..snapshot import write_snapshot
from .tasks import BackgroundTasks
from .video_view import VideoView

__all__ = ["CaptureControl"]


class CaptureControl:
    """Snapshots, recordings and markers of the viewer.

    Parameters
    ----------
    tasks : where the snapshot is written
    notify : ``f(text, error=False)`` tells the user how it went
    snapshot_dir, recording_dir : where S and R write

    Attributes
    ----------
    last_snapshot : ``{kind: path}`` of the last snapshot saved (None while one is written)
    """

    def __init__(self, tasks: BackgroundTasks, notify: Callable, *, snapshot_dir: Path,
                 recording_dir: Path):
        self._tasks = tasks
        self._notify = notify
        self.snapshot_dir = Path(snapshot_dir)
        self.recording_dir = Path(recording_dir)
        self.last_snapshot: Optional[dict] = None

    def snapshot(self, engine: Engine, view: VideoView, settings: Settings) -> None:
        """Save exactly what is on screen: overlay PNG, NIR TIFF, WL PNG, metrics JSON."""
        frame = view.frame
        if frame is None:
            self._notify("no picture to save yet", error=True)
            return
        # Copy now (a few ms): sources and the pipeline reuse their buffers, and
        # the files must hold exactly what was on screen when S was pressed.
        shown = view.picture.copy() if view.picture is not None else None
        pair = dataclasses.replace(frame.pair, wl=frame.pair.wl.copy(),
                                   nir=None if frame.pair.nir is None else frame.pair.nir.copy())
        info, cal, out = engine.info, engine.calibration, self.snapshot_dir

        def write():
            return write_snapshot(out, pair, frame.result, settings=settings,
                                  source_info=info, calibration=cal, composite=shown)

        def done(paths, error):
            if error is not None:
                self._notify(f"snapshot not saved: {error}", error=True)
                return
            self.last_snapshot = paths
            # the session names the files, not the folder they went to (privacy.py)
            engine.log_event("snapshot", source_index=int(frame.index),
                             files={k: Path(v).name if v else None for k, v in paths.items()})
            name = Path(paths["overlay"]).name.replace("_overlay.png", "")
            self._notify(f"snapshot saved: {name}")

        self.last_snapshot = None
        self._tasks.run("snapshot", write, done)

    def toggle_recording(self, engine: Engine) -> None:
        """Stop the recording, or start one in a new ``session_<date-time>`` folder."""
        if engine.recording:
            engine.stop_recording()
            self._notify("recording stopped")
        else:
            folder = self.recording_dir / f"session_{_dt.datetime.now():%Y%m%d-%H%M%S}"
            engine.start_recording(folder)
            self._notify(f"recording to {folder}")

    def add_marker(self, engine: Engine) -> None:
        """A marker at the frame on screen, kept in the recording."""
        pos = engine.position
        engine.log_event("marker", source_index=pos)
        self._notify(f"marker at frame {pos}" if engine.recording
                     else "markers are kept in recordings: press R to record")
