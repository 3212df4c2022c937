"""Run a pipeline over a whole source and write what it finds to a directory.

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

``process`` and ``batch`` both call :func:`run_process`.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from typing import Optional

import cv2
import numpy as np

from .errors import NirfError
from .processing.result import FRAME_COLUMNS, RIM_COLUMNS, row_cells


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
                codec="libx264", quality=None, macro_block_size=1, ffmpeg_log_level="error",
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


def _progress(total, enabled):
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", dynamic_ncols=True, leave=False)


def run_process(source, pipeline, out_dir, *, masks: bool = False, video: bool = True,
                frame_range: Optional[tuple] = None, progress: bool = True) -> dict:
    """Process every pair of ``source`` and write the results to ``out_dir``.

    Parameters
    ----------
    source : :class:`~nirf_overlay.sources.base.FrameSource` (read in order)
    pipeline : :class:`~nirf_overlay.processing.pipeline.Pipeline`
    out_dir : directory to create or reuse
    masks : write ``masks/NNNNNN.png``
    video : write ``overlay.mp4``
    frame_range : ``(start_s, end_s)`` in seconds of source time (either may
        be None); frames with ``start_s <= time < end_s`` are processed.  A
        seekable source with a known frame rate seeks to the start.
    progress : show a tqdm bar when stderr is a terminal

    Returns
    -------
    dict with frames, rims (distinct rim ids), rim_frames (frames with a rim),
    nir_lost (frames), seconds, fps, video codec (or None), out_dir
    """
    out_dir = str(out_dir)
    start_s, end_s = frame_range if frame_range is not None else (None, None)
    info = source.info
    if start_s and info.frame_count and info.fps and start_s >= info.frame_count / info.fps:
        raise NirfError(f"--range: starts at {start_s:g} s but the source ends at "
                        f"{info.frame_count / info.fps:.3g} s")
    try:
        os.makedirs(out_dir, exist_ok=True)
        if masks:
            os.makedirs(os.path.join(out_dir, "masks"), exist_ok=True)
    except OSError as e:
        raise NirfError(f"{out_dir}: cannot create output directory ({e.strerror})") from None
    first_index = 0
    if start_s and info.seekable and info.fps:
        first_index = int(np.floor(start_s * info.fps + 1e-6))
        source.seek(first_index)
        pipeline.reset()
    total = info.frame_count
    if total is not None:
        total = max(0, total - first_index)
        if end_s is not None and info.fps:
            total = min(total, max(0, int(np.ceil(end_s * info.fps - 1e-6)) - first_index))

    metrics_path = os.path.join(out_dir, "metrics.csv")
    rims_path = os.path.join(out_dir, "rims.csv")
    writer = None
    bar = _progress(total, progress)
    n = 0
    lost = 0
    rim_frames = 0
    ids = set()
    t0 = time.perf_counter()
    t_first = None
    try:
        with open(metrics_path, "w", newline="") as fm, open(rims_path, "w", newline="") as fr:
            mw = csv.writer(fm)
            rw = csv.writer(fr)
            mw.writerow(FRAME_COLUMNS)
            rw.writerow(RIM_COLUMNS)
            for pair in source:
                t = pair.wl_time
                if info.live:  # monotonic clock: report seconds from the first pair
                    t_first = t if t_first is None else t_first
                    t = t - t_first
                if start_s is not None and t < start_s - 1e-9:
                    continue
                if end_s is not None and t >= end_s - 1e-9:
                    break
                result = pipeline.process(pair)
                result.time_s = t
                mw.writerow(row_cells(result.frame_row(), FRAME_COLUMNS))
                for row in result.rim_rows():
                    rw.writerow(row_cells(row, RIM_COLUMNS))
                ids.update(r.rim_id for r in result.rims)
                rim_frames += bool(result.rims)
                lost += bool(result.nir_lost)
                if video:
                    if writer is None:
                        h, w = result.composite.shape[:2]
                        writer = VideoWriter(os.path.join(out_dir, "overlay.mp4"), (w, h),
                                             info.fps or 30.0)
                    writer.write(result.composite)
                if masks:
                    mask = result.rim_mask
                    if mask is None:
                        mask = np.zeros(pair.wl.shape[:2], np.uint8)
                    path = os.path.join(out_dir, "masks", f"{n:06d}.png")
                    if not cv2.imwrite(path, mask):
                        raise NirfError(f"{path}: cannot write mask")
                n += 1
                if bar is not None:
                    bar.update(1)
    except OSError as e:
        raise NirfError(f"{out_dir}: cannot write results ({e.strerror or e})") from None
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    seconds = time.perf_counter() - t0
    return {
        "frames": n, "rims": len(ids), "rim_frames": rim_frames, "nir_lost": lost,
        "seconds": seconds, "fps": n / seconds if seconds > 0 else 0.0,
        "video": writer.codec if writer is not None else None, "out_dir": out_dir,
    }
