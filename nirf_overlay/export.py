"""The files a run writes: metrics and rim tables, rim masks, the overlay video.

``DIR/metrics.csv``
    one row per frame, columns :data:`~nirf_overlay.processing.result.FRAME_COLUMNS`
    (several rims aggregate weighted by rim area; empty cells where there is no rim).
``DIR/rims.csv``
    one row per rim per frame, columns :data:`~nirf_overlay.processing.result.RIM_COLUMNS`.
``DIR/overlay.mp4``
    the composited display frames, H.264 (yuv420p, ``-crf 18``) through the
    imageio-ffmpeg binary; if that cannot run, OpenCV's ``mp4v`` writer (the
    summary says which).
``DIR/masks/NNNNNN.png``
    with ``masks=True``: the rim mask of each processed frame, 0/255, WL size,
    numbered from 000000 in processing order (an all-zero mask while NIR is lost).

Each file is written by a *sink*: a listener in the sense of
:class:`nirf_overlay.engine.Listener` (``on_state``, ``on_pair``,
``on_result(frame)`` with ``frame.pair`` and ``frame.result``), so the same
sink serves :func:`nirf_overlay.engine.run_frames` (``process``) and the
viewer's engine.  :class:`OutputDir` opens the ones a command asks for.
``batch`` writes the rows it stitched from its chunks through the same
:class:`MetricsSink`, and its study tables through :class:`CsvTable`: one
writer, one cell format (:func:`~nirf_overlay.processing.result.row_cells`).
"""

from __future__ import annotations

import csv
import os
from contextlib import contextmanager
from typing import Optional

import cv2
import numpy as np

from .errors import NirfError
from .outputs import make_new_output_dir
from .shutdown import atomic
from .processing.result import FRAME_COLUMNS, RIM_COLUMNS, row_cells


class CsvTable:
    """A CSV file: a header, then one line per row dict, cells as ``row_cells`` formats them.

    Parameters
    ----------
    path : the file (created or overwritten)
    columns : column names, the keys read from each row
    """

    def __init__(self, path: str, columns):
        self.path = path
        self.columns = tuple(columns)
        self._file = open(path, "w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.columns)

    def add(self, row: dict) -> None:
        self._writer.writerow(row_cells(row, self.columns))

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def write_table(path: str, columns, rows) -> None:
    """``rows`` (dicts) as one :class:`CsvTable`."""
    with CsvTable(path, columns) as table:
        for row in rows:
            table.add(row)


class _Sink:
    """The listener methods a sink leaves alone, and closing as a context manager.

    (The protocol is :class:`nirf_overlay.engine.Listener`; this module sits
    beside the engine in the layers and does not import it.)
    """

    def on_state(self, state) -> None:
        pass

    def on_pair(self, pair) -> None:
        pass

    def on_result(self, frame) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class MetricsSink(_Sink):
    """``metrics.csv`` and ``rims.csv`` in ``out_dir`` (an existing directory).

    Attributes
    ----------
    frames, rim_frames, nir_lost : rows written, frames with a rim, frames without NIR
    rim_ids : distinct rim ids written
    """

    def __init__(self, out_dir: str):
        self.frames = self.rim_frames = self.nir_lost = 0
        self.rim_ids: set = set()
        self._metrics = CsvTable(os.path.join(out_dir, "metrics.csv"), FRAME_COLUMNS)
        self._rims = CsvTable(os.path.join(out_dir, "rims.csv"), RIM_COLUMNS)

    def on_result(self, frame) -> None:
        result = frame.result
        self.add(result.frame_row(), result.rim_rows())
        self.nir_lost += bool(result.nir_lost)

    def add(self, frame_row: dict, rim_rows: list) -> None:
        """One frame's row and its rims' rows (``FrameResult.frame_row`` / ``rim_rows``)."""
        self._metrics.add(frame_row)
        for row in rim_rows:
            self._rims.add(row)
        self.frames += 1
        self.rim_ids.update(row["rim_id"] for row in rim_rows)
        self.rim_frames += bool(rim_rows)

    def close(self) -> None:
        self._metrics.close()
        self._rims.close()


class MaskSink(_Sink):
    """``masks/NNNNNN.png`` in ``out_dir``: each frame's rim mask, 0/255, numbered in order."""

    def __init__(self, out_dir: str):
        self.folder = os.path.join(out_dir, "masks")
        os.makedirs(self.folder, exist_ok=True)
        self.written = 0

    def on_result(self, frame) -> None:
        mask = frame.result.rim_mask
        if mask is None:  # NIR lost
            mask = np.zeros(frame.pair.wl.shape[:2], np.uint8)
        path = os.path.join(self.folder, f"{self.written:06d}.png")
        if not cv2.imwrite(path, mask):
            raise NirfError(f"{path}: cannot write mask")
        self.written += 1


class VideoSink(_Sink):
    """``overlay.mp4`` in ``out_dir``: the composites, at ``fps`` frames per second."""

    def __init__(self, out_dir: str, fps: float):
        self.path = os.path.join(out_dir, "overlay.mp4")
        self.fps = fps
        self._writer: Optional[VideoWriter] = None

    @property
    def codec(self) -> Optional[str]:
        """What the video was written with, None before the first frame."""
        return self._writer.codec if self._writer is not None else None

    def on_result(self, frame) -> None:
        composite = frame.result.composite
        if self._writer is None:  # the size is known from the first frame
            h, w = composite.shape[:2]
            self._writer = VideoWriter(self.path, (w, h), self.fps)
        self._writer.write(composite)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class OutputDir(_Sink):
    """The files ``process`` writes into ``out_dir``, as one sink.

    Parameters
    ----------
    out_dir : directory to create, or an empty one (:mod:`nirf_overlay.outputs`)
    masks : write ``masks/NNNNNN.png``
    video : write ``overlay.mp4`` at ``fps`` frames per second
    """

    def __init__(self, out_dir, *, masks: bool = False, video: bool = True, fps: float = 30.0):
        self.out_dir = make_new_output_dir(out_dir)  # never mixed with an earlier run
        self._sinks: list = []
        self.video: Optional[VideoSink] = None
        try:
            with self._writing():
                self.metrics = self._add(MetricsSink(self.out_dir))
                if video:
                    self.video = self._add(VideoSink(self.out_dir, fps))
                if masks:
                    self._add(MaskSink(self.out_dir))
        except BaseException:
            self.close()
            raise

    def on_result(self, frame) -> None:
        # one frame goes into every file or none: a stop signal waits (rows = masks = video frames)
        with atomic(), self._writing():
            for sink in self._sinks:
                sink.on_result(frame)

    def close(self) -> None:
        with atomic(), self._writing():
            for sink in self._sinks:
                sink.close()

    def summary(self) -> dict:
        """frames, rims (distinct ids), rim_frames, nir_lost, video (codec or None), out_dir."""
        m = self.metrics
        return {"frames": m.frames, "rims": len(m.rim_ids), "rim_frames": m.rim_frames,
                "nir_lost": m.nir_lost, "video": self.video.codec if self.video else None,
                "out_dir": self.out_dir}

    def _add(self, sink):
        self._sinks.append(sink)
        return sink

    @contextmanager
    def _writing(self):
        """A disk problem as one line that names the directory."""
        try:
            yield
        except OSError as e:
            why = e.strerror or (str(e).strip().splitlines() or ["write failed"])[0]
            raise NirfError(f"{self.out_dir}: cannot write results ({why})") from None


class VideoWriter:
    """BGR frames -> MP4: H.264 via the imageio-ffmpeg binary, else OpenCV mp4v.

    Parameters
    ----------
    path : output file
    size : (W, H) of the frames
    fps : frame rate written into the file
    """

    def __init__(self, path: str, size: tuple[int, int], fps: float):
        self.path = path
        self.size = size
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.codec = None
        self._gen = None
        self._cv = None
        try:
            import imageio_ffmpeg

            w, h = size
            # yuv420p needs even sides: pad one black column/row if odd
            pad = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"] if (w % 2 or h % 2) else []
            self._gen = imageio_ffmpeg.write_frames(
                path, size, pix_fmt_in="bgr24", pix_fmt_out="yuv420p", fps=self.fps,
                codec="libx264", quality=None, macro_block_size=1,
                # its own lines would reach the terminal before ours (a full disk): our
                # one line names the directory and the reason
                ffmpeg_log_level="quiet",
                output_params=["-crf", "18", "-preset", "veryfast", *pad])
            self._gen.send(None)
            self.codec = "h264 (libx264 via imageio-ffmpeg)"
        except Exception:
            self._gen = None
            self._cv = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
            if not self._cv.isOpened():
                raise NirfError(f"{path}: cannot write video (neither ffmpeg nor OpenCV could open it)")
            self.codec = "mp4v (OpenCV fallback)"

    def write(self, frame: np.ndarray) -> None:
        if self._gen is not None:
            self._gen.send(np.ascontiguousarray(frame))
        else:
            self._cv.write(frame)

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None
        if self._cv is not None:
            self._cv.release()
            self._cv = None
