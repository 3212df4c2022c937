"""Accuracy of rim segmentation and measurements against phantom truth.

``evaluate(frames, pipeline)`` runs any object with ``process(pair) ->
FrameResult`` (normally :class:`~nirf_overlay.processing.pipeline.Pipeline`)
over frame pairs that carry :class:`~nirf_overlay.phantom.Truth`, through the
one frame loop (:func:`nirf_overlay.engine.run_frames`) with a
:class:`TruthScorer` listening, and returns the figures the project's
accuracy targets are stated in:

- ``mean_dice``: mean over frames (with a visible rim) of the Dice overlap of
  ``FrameResult.rim_mask`` and ``truth.rim_mask``;
- ``duct_fraction``: bile-duct pixels labelled rim / all visible bile-duct
  pixels, pooled over frames (``distractor_fraction`` likewise for duct,
  gallbladder and bile spills together);
- ``thickness_error_mm``: per truth lesion, the median over frames of its
  matched rim's ``rim_thickness_mm`` minus ``rim_width_mm``; reported as the
  worst lesion (``thickness_error_mm_max``) and the median over lesions;
- per lesion also ``thickness_error_seen_mm``: the median over frames of
  ``rim_thickness_mm - rim_width_mm * truth.scale``, against the width as the
  calibration sees it: breathing and the scope zoom the view by ``scale``
  (within +-1.5 %) and the pipeline converts with the calibration's mm per
  px, which cannot know that zoom, so a rim reads ``scale`` times its width
  (on 10 frames of one breathing phase that is a lean of one sign); this
  error is the measurement's own;
- ``tbr_error``: per lesion, the median over frames of ``tbr / truth.tbr - 1``;
  worst lesion and median;
- ``dice_before_gain_step`` / ``dice_after_gain_step``: mean Dice over frames
  before / after the camera's gain changes;
- ``detected``: fraction of visible lesion-frames with a matched rim.

A rim is matched to the truth lesion whose core centre is nearest to the
rim's centroid, within the lesion's radius plus rim width (plus 30 %).

Command line::

    python -m nirf_overlay.evaluate --seeds 100 101 --size 1280x720 --frames 30
    python -m nirf_overlay.evaluate --seeds 100 --frames 10 --report DIR [--worst 6]
    python -m nirf_overlay.evaluate --tower three-left --curve gamma:2.4 [--transfer none]

(``--report``: see :mod:`nirf_overlay.evaluate_report`.  ``--tower``: the phantom
seen through a tower, written as 8-bit H.264 and read back through the combined
source with the tower's layout and transfer: :mod:`nirf_overlay.evaluate_tower`;
``--size`` is then the tower frame's.)
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import deque
from typing import Iterable, Optional

import numpy as np

from .engine import Listener, run_frames
from .processing.follow import MotionHistory, move_mask, move_rims


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two bool masks (1.0 when both are empty)."""
    s = int(a.sum()) + int(b.sum())
    if s == 0:
        return 1.0
    return 2.0 * int((a & b).sum()) / s


def _match(rims, lesions, mm_per_px: float) -> dict:
    """Truth lesion id -> matched RimMeasurement (greedy by distance)."""
    pairs = []
    for lt in lesions:
        if lt.rim_area_px <= 0:
            continue
        lim = 1.3 * (lt.core_radius_mm + lt.rim_width_mm) / mm_per_px
        for j, r in enumerate(rims):
            d = math.hypot(r.centroid[0] - lt.center_xy[0], r.centroid[1] - lt.center_xy[1])
            if d <= lim:
                pairs.append((d, lt.id, j))
    pairs.sort()
    out, used = {}, set()
    for d, lid, j in pairs:
        if lid in out or j in used:
            continue
        out[lid] = rims[j]
        used.add(j)
    return out


def evaluate(frames: Iterable, pipeline, *, lag: int = 0, progress: bool = False,
             keep=None) -> dict:
    """Run ``pipeline`` over phantom frame pairs and compare with their truth.

    Parameters
    ----------
    frames : iterable of FramePair with ``truth`` (:class:`~nirf_overlay.phantom.Truth`)
    pipeline : object with ``process(pair) -> FrameResult``
    lag : int
        Compare each frame's truth with the result of the frame ``lag`` frames
        earlier, as the live viewer shows rims from the newest finished
        analysis (``bench`` reports how late that is); the first ``lag``
        frames are not scored.  0 = every frame against its own result.
    progress : print each frame's Dice as it goes
    keep : optional object with ``offer(dice, index, wl, rim, truth)``, given
        every frame with a visible rim (the report's
        :class:`~nirf_overlay.evaluate_report.WorstFrames`)

    Returns
    -------
    dict of accuracy figures (see the module docstring) plus ``per_lesion``
    (lesion id -> dict of truth and median measured values), ``per_frame``
    (one dict per scored frame: Dice, duct pixels, and the worst matched lesion's
    ``tbr_error`` and ``thickness_error_mm``, None without one) and ``frames``.
    """
    if lag < 0:
        raise ValueError(f"lag must be 0 or more, got {lag}")
    scorer = TruthScorer(lag=lag, progress=progress, keep=keep)
    run_frames(frames, pipeline, [scorer])
    if progress:
        print()
    return scorer.figures()


class TruthScorer(Listener):
    """Scores every result against its pair's phantom truth: :func:`evaluate`'s listener.

    Parameters
    ----------
    lag : score each truth against the result ``lag`` frames older
    progress : print each frame's Dice
    keep : see :func:`evaluate`
    """

    def __init__(self, *, lag: int = 0, progress: bool = False, keep=None):
        self.lag = lag
        self.keep = keep
        self._per_frame: list = []
        self.progress = progress
        self.frames = 0
        self._held: deque = deque()  # (index, rim mask, rims) of the last lag + 1 frames
        #: the results' motion, so a lagged mask is moved to the frame it is scored
        #: on, as the viewer moves its lagged outlines (:mod:`.processing.follow`)
        self._motion = MotionHistory()
        self._dices: list = []
        self._dice_gain: dict = {}  # "before" / "after" the gain step -> [dice]
        self._gain0 = None
        self._duct = [0, 0]  # rim pixels on a duct, duct pixels
        self._distractor = [0, 0]
        self._per_lesion: dict = {}
        self._visible = self._matched = 0

    def on_pair(self, pair) -> None:
        if pair.truth is None:
            raise ValueError(f"frame {pair.index}: no truth (evaluate needs phantom frames)")

    def on_result(self, frame) -> None:
        res = frame.result
        self.frames += 1
        # a copy: the pipeline reuses its mask buffers a few frames on
        self._held.append((res.index, (res.rim_mask > 0) if res.rim_mask is not None else None,
                           list(res.rims)))
        if res.motion is not None:
            self._motion.add(res.index, res.motion)
        if len(self._held) <= self.lag:
            return
        held_index, rim, rims = self._held.popleft()
        truth = frame.pair.truth
        if rim is None:
            rim = np.zeros(truth.labels.shape, bool)
        since = self._motion.since(held_index) if self.lag else None
        if since is not None:
            rim, rims = move_mask(rim, since), move_rims(rims, since)
        d = self._score_masks(rim, truth)
        duct = truth.duct_mask
        tbr_err, thick_err = self._score_lesions(rims, truth)
        self._per_frame.append({"frame": frame.pair.index, "dice": d,
                                "duct_px_labelled_rim": int((rim & duct).sum()),
                                "duct_px": int(duct.sum()), "tbr_error": _worst(tbr_err),
                                "thickness_error_mm": _worst(thick_err)})
        if self.keep is not None and d is not None:
            self.keep.offer(d, frame.pair.index, frame.pair.wl, rim, truth)
        if self.progress:
            last = self._dices[-1] if self._dices else float("nan")
            print(f"\rframe {frame.pair.index}: dice {last:.3f}", end="", flush=True)

    def _score_masks(self, rim: np.ndarray, truth) -> Optional[float]:
        """Tally the frame's masks; return its rim Dice (None: no visible rim)."""
        if self._gain0 is None:
            self._gain0 = truth.gain
        d = None
        if truth.rim_mask.any():
            d = dice(rim, truth.rim_mask)
            self._dices.append(d)
            self._dice_gain.setdefault("before" if truth.gain == self._gain0 else "after", []).append(d)
        for tally, mask in ((self._duct, truth.duct_mask), (self._distractor, truth.distractor_mask)):
            tally[0] += int((rim & mask).sum())
            tally[1] += int(mask.sum())
        return d

    def _score_lesions(self, rims: list, truth) -> tuple[list, list]:
        """Tally the frame's lesions; return its TBR and thickness errors (matched lesions)."""
        m = _match(rims, truth.lesions, truth.mm_per_px)
        tbr_err, thick_err = [], []
        for lt in truth.lesions:
            if lt.rim_area_px <= 0:
                continue
            self._visible += 1
            rec = self._per_lesion.setdefault(lt.id, {
                "rim_width_mm": lt.rim_width_mm, "thickness_mm": [], "thickness_seen_err": [],
                "tbr_true": [], "tbr": [],
                "completeness_true": lt.completeness, "completeness": [],
                "blur_sigma_mm": lt.blur_sigma_mm})
            r = m.get(lt.id)
            if r is None:
                continue
            self._matched += 1
            if r.rim_thickness_mm is not None:
                rec["thickness_mm"].append(r.rim_thickness_mm)
                thick_err.append(r.rim_thickness_mm - lt.rim_width_mm)
                rec["thickness_seen_err"].append(r.rim_thickness_mm - lt.rim_width_mm * truth.scale)
            rec["tbr"].append(r.tbr)
            rec["tbr_true"].append(lt.tbr)
            rec["completeness"].append(r.rim_completeness)
            tbr_err.append(r.tbr / lt.tbr - 1.0)
        return tbr_err, thick_err

    def figures(self) -> dict:
        """The accuracy figures of everything scored (see the module docstring)."""
        thick_err, tbr_err, summary = [], [], {}
        for lid, rec in self._per_lesion.items():
            s = {"rim_width_mm": rec["rim_width_mm"], "blur_sigma_mm": rec["blur_sigma_mm"],
                 "completeness_true": rec["completeness_true"], "frames_matched": len(rec["tbr"])}
            if rec["thickness_mm"]:
                s["thickness_mm"] = float(np.median(rec["thickness_mm"]))
                s["thickness_error_mm"] = s["thickness_mm"] - rec["rim_width_mm"]
                thick_err.append(s["thickness_error_mm"])
                s["thickness_error_seen_mm"] = float(np.median(rec["thickness_seen_err"]))
            if rec["tbr"]:
                rel = np.asarray(rec["tbr"]) / np.asarray(rec["tbr_true"]) - 1.0
                s["tbr_true"] = float(np.median(rec["tbr_true"]))
                s["tbr"] = float(np.median(rec["tbr"]))
                s["tbr_error"] = float(np.median(rel))
                tbr_err.append(s["tbr_error"])
                s["completeness"] = float(np.median(rec["completeness"]))
            summary[lid] = s

        worst = _worst

        def med_abs(v):
            return float(np.median(np.abs(v))) if v else None

        dices, gain = self._dices, self._dice_gain
        (duct_hit, duct_all), (dis_hit, dis_all) = self._duct, self._distractor
        return {
            "frames": self.frames,
            "mean_dice": float(np.mean(dices)) if dices else None,
            "min_dice": float(np.min(dices)) if dices else None,
            "duct_fraction": duct_hit / duct_all if duct_all else 0.0,
            "distractor_fraction": dis_hit / dis_all if dis_all else 0.0,
            "thickness_error_mm_max": worst(thick_err),
            "thickness_error_mm_median": med_abs(thick_err),
            "tbr_error_max": worst(tbr_err),
            "tbr_error_median": med_abs(tbr_err),
            "dice_before_gain_step": float(np.mean(gain["before"])) if gain.get("before") else None,
            "dice_after_gain_step": float(np.mean(gain["after"])) if gain.get("after") else None,
            "detected": self._matched / self._visible if self._visible else None,
            "per_lesion": summary,
            "per_frame": list(self._per_frame),
        }


def _worst(v) -> Optional[float]:
    """The value of largest magnitude (signed), None for none."""
    return float(max(v, key=abs)) if v else None


class AnalysisOnly:
    """The analysis stage alone behind a ``process(pair) -> FrameResult`` face.

    Normalises raw NIR with the pipeline's own
    :class:`~nirf_overlay.processing.normalise.Normaliser` -- dark, flat,
    gain and exposure, the temporal filter off -- and runs
    :class:`~nirf_overlay.processing.analysis.RimAnalyzer`.  It measures the
    analysis independently of the temporal filter and the display levels
    (compare with the full :class:`~nirf_overlay.processing.pipeline.Pipeline`
    to see what they add).
    """

    def __init__(self, settings=None, calibration=None):
        from .processing.analysis import RimAnalyzer
        from .processing.normalise import Normaliser
        from .settings import Settings

        self.settings = (settings or Settings()).copy()
        self.settings.set("normalise.temporal_alpha", 0.0)  # every frame on its own
        self.mm_per_px = None if calibration is None else calibration.mm_per_px
        self.normaliser = Normaliser(calibration)
        self.analyzer = RimAnalyzer(self.settings, mm_per_px=self.mm_per_px)

    def process(self, pair):
        from .processing.result import FrameResult

        norm = self.normaliser.process(pair.nir, pair.wl.shape, nir_bits=pair.nir_bits,
                                       gain=pair.gain, exposure_ms=pair.exposure_ms,
                                       settings=self.settings)
        a = self.analyzer.analyze(norm.nir, pair.wl, norm.valid)
        return FrameResult(index=pair.index, time_s=pair.wl_time, composite=pair.wl,
                           rim_mask=a.rim_mask, rims=a.rims, fluorescence_mask=a.fluorescence_mask,
                           plane=a.plane, mm_per_px=self.mm_per_px)


def format_table(rows: list[tuple[str, dict]]) -> str:
    """A plain-text table of evaluate() results, one row per run."""
    cols = [("mean_dice", "Dice", "{:.3f}"), ("min_dice", "minDice", "{:.3f}"),
            ("duct_fraction", "duct", "{:.3f}"), ("distractor_fraction", "distr", "{:.3f}"),
            ("thickness_error_mm_max", "thk_err_max", "{:+.3f}"),
            ("thickness_error_mm_median", "thk_err_med", "{:.3f}"),
            ("tbr_error_max", "tbr_err_max", "{:+.3f}"),
            ("tbr_error_median", "tbr_err_med", "{:.3f}"),
            ("dice_before_gain_step", "Dice<gain", "{:.3f}"),
            ("dice_after_gain_step", "Dice>gain", "{:.3f}"), ("detected", "detected", "{:.2f}")]
    head = f"{'run':<28}" + "".join(f"{c[1]:>12}" for c in cols)
    lines = [head]
    for name, r in rows:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            cells.append(f"{fmt.format(v) if v is not None else '-':>12}")
        lines.append(f"{name:<28}" + "".join(cells))
    return "\n".join(lines)


def main(argv: Optional[list] = None) -> int:
    from dataclasses import replace

    from .phantom import Phantom, PhantomParams
    from .phantom.duct import DUCT_TOUCH
    from .processing.pipeline import Pipeline
    from .settings import Settings

    ap = argparse.ArgumentParser(prog="python -m nirf_overlay.evaluate",
                                 description="Rim accuracy against phantom truth")
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--frames", type=int, default=30, help="consecutive frames per seed, around the gain step")
    ap.add_argument("--tbr", type=float, nargs=2, default=None, metavar=("LO", "HI"))
    ap.add_argument("--completeness", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="partial rims only: arc fraction drawn in [LO, HI] (no complete rims)")
    ap.add_argument("--duct-touch", choices=DUCT_TOUCH, default=None,
                    help="a bile duct runs into the first lesion's rim, meeting it at this angle")
    ap.add_argument("--duct-width", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="bile duct width drawn in [LO, HI] mm")
    ap.add_argument("--duct-brightness", type=float, default=None, metavar="X",
                    help="with --duct-touch: the duct's brightness, X times that rim's TBR")
    ap.add_argument("--settings", default=None)
    ap.add_argument("--fps", type=float, default=None, help="phantom frame rate (default its own, 30)")
    ap.add_argument("--lag", type=int, default=0,
                    help="score each frame against the result of the frame LAG earlier (the "
                         "live viewer's rims are a frame or more old)")
    ap.add_argument("--analysis-only", action="store_true",
                    help="plain normalisation + RimAnalyzer instead of the full Pipeline")
    ap.add_argument("--report", default=None, metavar="DIR",
                    help="write the tables (CSV), worst-frame pictures (PNG) and index.html into "
                         "DIR (new or empty)")
    ap.add_argument("--worst", type=int, default=6, metavar="N",
                    help="with --report: pictures of the N frames with the lowest rim Dice")
    g = ap.add_argument_group("tower recordings (python -m nirf_overlay.evaluate_tower)")
    g.add_argument("--tower", default=None, choices=("side-by-side", "three-left", "quad"),
                   help="score the phantom as a tower shows it, in this layout (not pip: its "
                        "NIR inset covers part of the WL view, which a layout cannot leave out)")
    g.add_argument("--curve", default="gamma:2.2", help="the tower's display curve (gamma:G, log:A)")
    g.add_argument("--transfer", default="lut", metavar="T",
                   help="lut (the table that undoes the curve, default), none (display values) "
                        "or a --nir-transfer spec")
    g.add_argument("--crf", type=int, default=16, help="H.264 quality of the tower file")
    g.add_argument("--no-flat", action="store_true",
                   help="no flat in the tower's profile (the camera's vignetting stays in T and B)")
    args = ap.parse_args(argv)
    if args.tower is not None and args.analysis_only:
        ap.error("--analysis-only: not with --tower (a tower recording runs the whole pipeline)")
    if args.lag < 0:
        ap.error(f"--lag {args.lag}: must be 0 or more")
    if args.duct_brightness is not None and not args.duct_touch:
        ap.error("--duct-brightness: only with --duct-touch (it is relative to the touched rim's TBR)")
    if args.worst < 0:
        ap.error(f"--worst {args.worst}: must be 0 or more")
    keep = None
    if args.report:
        from .errors import NirfError
        from .evaluate_report import WorstFrames
        from .outputs import check_new_output_dir

        try:
            check_new_output_dir(args.report, "report directory")
        except NirfError as e:
            print(e, file=sys.stderr)
            return e.exit_code
        keep = WorstFrames(args.worst)
    w, h = (int(v) for v in args.size.lower().split("x"))
    if args.tower is not None:
        problem = _tower_problem(args, (w, h))
        if problem is not None:
            print(problem, file=sys.stderr)
            return problem.exit_code
    settings = Settings.load(args.settings) if args.settings else Settings()
    rows = []
    for seed in args.seeds:
        params = PhantomParams(seed=seed, size=(w, h))
        if args.fps:
            params = replace(params, fps=args.fps)
        if args.tbr:
            params = replace(params, tbr=tuple(args.tbr))
        if args.duct_touch or args.duct_width or args.duct_brightness:
            params = replace(params, duct_touch=args.duct_touch, duct_touch_brightness=args.duct_brightness,
                             duct_width_mm=tuple(args.duct_width or params.duct_width_mm))
        if args.completeness:
            params = replace(params, completeness=tuple(args.completeness), p_complete=0.0)
        if keep is not None:
            keep.run = f"seed {seed}"
        # consecutive frames (the pipeline's temporal state sees real motion)
        # straddling the auto-gain step
        step = int(round((params.gain_step_s or 0.0) * params.fps))
        start = max(args.lag, step - args.frames // 2)
        # with a lag, run from that many frames earlier: the same truth frames
        # are scored at every lag, only the results they are scored against change
        frames = range(start - args.lag, start + args.frames)
        if args.tower is not None:
            r = _evaluate_tower(args, params, (w, h), frames, settings, keep)
        else:
            ph = Phantom(params)
            pipe = (AnalysisOnly(settings, ph.calibration()) if args.analysis_only
                    else Pipeline(settings, ph.calibration()))
            r = evaluate((ph.frame(i) for i in frames), pipe, lag=args.lag, keep=keep)
        rows.append((f"seed {seed}", r))
        print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    print(format_table(rows))
    if args.report:
        from .evaluate_report import write_report

        write_report(args.report, rows, keep)
        print(f"report: {args.report}")
    return 0


def _tower_problem(args, size):
    """The one-line NirfError of a bad ``--curve``, ``--size`` or ``--transfer``, else None."""
    from .calibration.transfer import parse_transfer
    from .errors import NirfError
    from .evaluate_tower import LUT, NONE
    from .phantom.tower import TowerParams

    try:
        TowerParams(layout=args.tower, size=size, curve=args.curve).validate()
        if args.transfer not in (LUT, NONE):
            parse_transfer(args.transfer, what="--transfer")
    except NirfError as e:
        return e
    return None


def _evaluate_tower(args, params, size, frames, settings, keep) -> dict:
    """One seed through a tower recording (:class:`~.evaluate_tower.TowerInput`)."""
    import tempfile

    from .evaluate_tower import TowerInput
    from .phantom.tower import Tower, TowerParams
    from .processing.pipeline import Pipeline

    tower = Tower(TowerParams(layout=args.tower, size=size, curve=args.curve, seed=params.seed),
                  params)
    with tempfile.TemporaryDirectory(prefix="nirf-tower-") as d, \
            TowerInput(tower, frames, d, transfer=args.transfer, crf=args.crf,
                       camera_flat=not args.no_flat) as rec:
        return evaluate(rec.pairs(), Pipeline(settings, rec.calibration), lag=args.lag, keep=keep)


if __name__ == "__main__":
    raise SystemExit(main())
