"""`nirf-overlay make-sample`: render phantom recordings (the bundled sample and larger ones).

Writes, for ``--name NAME`` into ``--out DIR``:

- ``NAME_wl.mp4``   white light, H.264 (libx264, yuv420p, CRF ``--crf``)
- ``NAME_nir.mkv``  NIR raw counts, FFV1 gray16le (lossless, 12 bits used)
- ``NAME_truth.npz``, ``NAME_truth_frames.csv``, ``NAME_truth_lesions.csv``
  ground truth per frame (unless ``--no-truth``): masks as a label bit field
  and T, B, TBR, rim width, completeness per lesion
- a calibration profile (``profile.json`` + ``dark.tiff`` + ``flat.tiff``)
  in ``--calibration-dir`` (default: ``calibration/sample`` for the bundled
  sample, ``DIR/calibration`` otherwise)

With no options it regenerates the bundled sample exactly as shipped.
"""

from __future__ import annotations

import argparse

from .common import finite_number, non_negative_count, positive_number
from .source_args import size_arg


def _crf(text: str) -> int:
    """argparse type: an H.264 CRF, 0 (lossless) .. 51."""
    value = non_negative_count(text)
    if value > 51:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 0 (lossless) .. 51")
    return value

# seed 4: two lesions with incomplete rims (TBR about 13 and 5), a curved bile duct
DEFAULTS = dict(size=(640, 360), seconds=3.0, fps=30.0, seed=4, name="sample", crf=16)


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="output directory (default: sample_videos/)")
    parser.add_argument("--name", default=DEFAULTS["name"], help="file name prefix (default: sample)")
    parser.add_argument("--size", type=size_arg, default=DEFAULTS["size"], metavar="WxH",
                        help="frame size, even sides (default 640x360)")
    parser.add_argument("--seconds", type=positive_number, default=DEFAULTS["seconds"], help="length (default 3)")
    parser.add_argument("--fps", type=positive_number, default=DEFAULTS["fps"], help="frame rate (default 30)")
    parser.add_argument("--seed", type=non_negative_count, default=DEFAULTS["seed"], help="phantom seed (default 4)")
    parser.add_argument("--gain-step", type=finite_number, metavar="S",
                        help="time of the x2 auto-gain step in s (default: half-way; negative: none)")
    parser.add_argument("--crf", type=_crf, default=DEFAULTS["crf"],
                        help="H.264 quality of the WL video, 0 (lossless) .. 51 (default 16)")
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE",
                        help="any PhantomParams field, e.g. --set n_lesions=3 --set tbr=2,4 "
                        "(repeatable)")
    parser.add_argument("--calibration-dir", metavar="DIR",
                        help="where the calibration profile goes (default: calibration/sample for "
                        "the bundled sample, DIR/calibration otherwise)")
    parser.add_argument("--no-truth", action="store_true", help="skip the ground-truth sidecar")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = parser.add_argument_group("tower recording (one combined 16:9 8-bit display, H.264)")
    g.add_argument("--tower", metavar="LAYOUT",
                   help="write what a laparoscopy tower shows instead: side-by-side, three-left, "
                        "pip or quad (NAME_tower.mp4, NAME_tower.json, NAME_transfer.csv; --size "
                        "is then the tower frame, 16:9, default 1280x720)")
    g.add_argument("--curve", default="gamma:2.2", metavar="gamma:G|log:A",
                   help="the tower's NIR display curve (default gamma:2.2)")
    g.add_argument("--no-text", action="store_true", help="tower: no burned-in text")


_BOOL = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _convert(text, default, type_name):
    """One ``--set`` value, typed like the field's default (or its annotation for None)."""
    low = text.strip().lower()
    if default is None:  # Optional[...]: 'none' or a value of the inner type
        if low == "none":
            return None
        inner = type_name.replace("Optional[", "").rstrip("]")
        if inner == "bool":
            return _BOOL[low]
        return {"int": int, "float": float}[inner](text)
    if isinstance(default, bool):
        return _BOOL[low]
    if isinstance(default, tuple):
        value = tuple(type(default[0])(p) for p in text.replace(" ", "").split(",") if p)
        if len(value) != len(default):
            raise ValueError
        return value
    return type(default)(text)


def _parse_set(items, fields):
    """``name=value`` strings to PhantomParams overrides.

    ``fields`` maps a field name to ``(default, annotation)``.
    """
    from ..errors import NirfError

    out = {}
    for item in items:
        if "=" not in item:
            raise NirfError(f"--set {item}: expected PARAM=VALUE")
        key, text = (s.strip() for s in item.split("=", 1))
        if key not in fields or key in ("seed", "size", "fps"):
            allowed = ", ".join(sorted(k for k in fields if k not in ("seed", "size", "fps")))
            raise NirfError(f"--set {key}: not a phantom parameter (one of: {allowed})")
        default, type_name = fields[key]
        try:
            out[key] = _convert(text, default, str(type_name))
        except (ValueError, KeyError):
            like = {"Optional[int]": "an integer or none", "Optional[bool]": "true, false or none",
                    "Optional[float]": "a number or none"}.get(str(type_name))
            like = like or (f"lo,hi like {default[0]},{default[1]}" if isinstance(default, tuple)
                            else f"a value like {default!r}")
            raise NirfError(f"--set {key}={text}: expected {like}") from None
    return out


def write_profile(phantom, cal_dir) -> str:
    """Write the phantom's calibration profile (JSON + dark/flat TIFFs); return the JSON path.

    An unchanged profile keeps its date, so that regenerating changes no file.
    """
    import dataclasses
    import os

    from ..calibration import save_profile

    p = phantom.params
    cal = dataclasses.replace(
        phantom.calibration(), system="nirf-overlay phantom",
        notes=f"made by nirf-overlay make-sample: seed {p.seed}, field of view {p.fov_mm:g} mm "
              f"across {p.size[0]} px",
        extra={"working_distance_mm": 45.0})  # a laparoscope 4-5 cm from the liver
    path = os.path.join(cal_dir, "profile.json")
    before = _read_json(path)
    save_profile(cal, path, created=before.get("created"))
    if before and _undated(_read_json(path)) != _undated(before):
        save_profile(cal, path)  # something changed: today's date
    return path


def _read_json(path) -> dict:
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _undated(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "created"}


def _write_frames(run, *, tables, fps, total, desc, progress) -> None:
    """Run ``run(on_frame)``, which writes the frames and calls ``on_frame(i, truth)``
    for each; the truth rows and the progress bar follow it, and the tables and the
    bar are closed on the way out, also on an error."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc=desc, leave=False)

    def on_frame(i, truth):
        if tables is not None:
            tables.add(i, i / fps, truth)
        if bar is not None:
            bar.update(1)

    try:
        run(on_frame)
        if tables is not None:
            tables.finish()
    finally:
        if bar is not None:
            bar.close()
        if tables is not None:
            tables.close()


def make_recording(params, out_dir, *, name="sample", frames, crf=16, truth=True,
                   cal_dir=None, progress=True) -> dict:
    """Render ``frames`` frames of the phantom ``params`` into ``out_dir``.

    Returns a summary dict with the written paths, frame count and sizes.
    """
    import os
    import time
    from concurrent.futures import ThreadPoolExecutor

    from ..phantom import Phantom
    from ..recording.encoders import finish_file, raw_video_encoder, write_frame

    ph = Phantom(params)
    w, h = ph.size
    os.makedirs(out_dir, exist_ok=True)
    wl_path = os.path.join(out_dir, f"{name}_wl.mp4")
    nir_path = os.path.join(out_dir, f"{name}_nir.mkv")
    fps = params.fps
    wl_w = raw_video_encoder(wl_path, (w, h), fps, pix_in="bgr24", codec_args=[
        "-c:v", "libx264", "-preset", "slow", "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-movflags", "+faststart"])
    # FFV1 version 3 with the large context model: lossless, the best it does on noise
    nir_w = raw_video_encoder(nir_path, (w, h), fps, pix_in="gray16le", codec_args=[
        "-c:v", "ffv1", "-level", "3", "-coder", "1", "-context", "1", "-g", "1",
        "-slicecrc", "1", "-pix_fmt", "gray16le"])
    tables = _TruthFiles(out_dir, name, frames, ph.size, ph.params) if truth else None

    def run(on_frame):
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:  # the scene renders in two threads
                for i, pair in enumerate(pool.map(ph.frame, range(frames))):
                    write_frame(wl_w, pair.wl, wl_path)
                    write_frame(nir_w, pair.nir.astype("<u2", copy=False), nir_path)
                    on_frame(i, pair.truth)
        finally:
            finish_file(wl_w, wl_path)
            finish_file(nir_w, nir_path)

    t0 = time.perf_counter()
    _write_frames(run, tables=tables, fps=fps, total=frames, desc=f"make-sample {w}x{h}",
                  progress=progress)
    elapsed = time.perf_counter() - t0
    summary = {"wl": wl_path, "nir": nir_path, "frames": frames, "size": [w, h], "fps": fps,
               "seconds_to_render": round(elapsed, 2), "mm_per_px": ph.mm_per_px,
               **(tables.paths if tables is not None else {})}
    if cal_dir is not None:
        summary["profile"] = write_profile(ph, cal_dir)
    return summary


class _TruthFiles:
    """The truth sidecar (``NAME_truth.npz``) and its two readable tables, frame by frame."""

    FRAME_COLUMNS = ("frame", "time_s", "gain", "exposure_ms", "scale", "lesions_visible",
                     "target_intensity", "background_intensity", "tbr", "rim_area_px",
                     "duct_px", "gallbladder_px", "instrument_px", "specular_px")
    LESION_COLUMNS = ("frame", "time_s", "lesion_id", "center_x", "center_y", "rim_width_mm",
                      "completeness", "target_intensity", "background_intensity", "tbr",
                      "rim_area_px", "core_radius_mm", "blur_sigma_mm", "depth_mm", "target_tbr")

    def __init__(self, out_dir, name, frames, size, params):
        import csv
        import os

        from ..phantom import TruthWriter

        self.paths = {"truth": os.path.join(out_dir, f"{name}_truth.npz"),
                      "truth_frames": os.path.join(out_dir, f"{name}_truth_frames.csv"),
                      "truth_lesions": os.path.join(out_dir, f"{name}_truth_lesions.csv")}
        self._sidecar = TruthWriter(self.paths["truth"], frames, size, params=params)
        self._files = [open(self.paths["truth_frames"], "w", newline=""),
                       open(self.paths["truth_lesions"], "w", newline="")]
        self._frames, self._lesions = (csv.writer(f) for f in self._files)
        self._frames.writerow(self.FRAME_COLUMNS)
        self._lesions.writerow(self.LESION_COLUMNS)

    def add(self, i: int, t_s: float, truth) -> None:
        self._sidecar.add(truth)
        vis = [lt for lt in truth.lesions if lt.rim_area_px > 0]
        self._frames.writerow([
            i, _num(t_s), _num(truth.gain), _num(truth.exposure_ms), _num(truth.scale), len(vis),
            _num(truth.target_intensity), _num(truth.background_intensity), _num(truth.tbr),
            sum(lt.rim_area_px for lt in vis), int(truth.duct_mask.sum()),
            int(truth.gallbladder_mask.sum()), int(truth.instrument_mask.sum()),
            int(truth.specular_mask.sum())])
        for lt in truth.lesions:
            self._lesions.writerow([
                i, _num(t_s), lt.id, _num(lt.center_xy[0]), _num(lt.center_xy[1]),
                _num(lt.rim_width_mm), _num(lt.completeness), _num(lt.target_intensity),
                _num(lt.background_intensity), _num(lt.tbr), lt.rim_area_px,
                _num(lt.core_radius_mm), _num(lt.blur_sigma_mm), _num(lt.depth_mm),
                _num(lt.target_tbr)])

    def finish(self) -> None:
        """All frames added: complete the sidecar."""
        self._sidecar.close()

    def close(self) -> None:
        for f in self._files:
            f.close()


def _num(x) -> str:
    import math

    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6g}"


def make_tower_recording(tower, out_dir, *, name="tower", frames, crf=16, truth=True,
                         progress=True) -> dict:
    """Render ``frames`` frames of ``tower`` (a :class:`~nirf_overlay.phantom.tower.Tower`)
    into ``out_dir``: the combined display (H.264), the phantom's truth in WL-inset
    pixels, the tower's truth (``NAME_tower.json``: insets, curve, ignore boxes) and
    the table that undoes its curve (``NAME_transfer.csv``: display as a fraction of
    full scale, linear; ``--nir-transfer lut:NAME_transfer.csv``)."""
    import json
    import os
    import time

    from ..evaluate_tower import write_tower_video, write_transfer_csv

    w, h = tower.params.size
    fps = tower.fps
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}_tower.mp4")
    tables = _TruthFiles(out_dir, name, frames, tower.phantom.size, tower.phantom.params) if truth else None

    def run(on_frame):
        write_tower_video(tower, path, range(frames), crf=crf,
                          on_frame=lambda i, f: on_frame(i, f.pair.truth))

    t0 = time.perf_counter()
    _write_frames(run, tables=tables, fps=fps, total=frames, desc=f"make-sample tower {w}x{h}",
                  progress=progress)
    doc_path = os.path.join(out_dir, f"{name}_tower.json")
    with open(doc_path, "w") as fh:
        json.dump(tower.truth_document(), fh, indent=1)
    lut_path = write_transfer_csv(tower.params.curve, os.path.join(out_dir, f"{name}_transfer.csv"))
    return {"combined": path, "tower": doc_path, "transfer": lut_path, "frames": frames,
            "size": [w, h], "fps": fps, "seconds_to_render": round(time.perf_counter() - t0, 2),
            "mm_per_px": tower.phantom.mm_per_px,
            **(tables.paths if tables is not None else {})}


def _run_tower(args, params, frames) -> int:
    import os

    from ..errors import NirfError
    from ..phantom.tower import Tower, TowerParams

    size = args.size if args.size != DEFAULTS["size"] else (1280, 720)
    tower = Tower(TowerParams(layout=args.tower, size=size, curve=args.curve,
                              text=not args.no_text, seed=args.seed), params)
    if not args.out:
        raise NirfError("--tower: give --out DIR (the bundled sample is not a tower recording)")
    s = make_tower_recording(tower, args.out, name=args.name, frames=frames, crf=args.crf,
                             truth=not args.no_truth, progress=not args.no_progress)
    w, h = s["size"]
    print(f"wrote {s['frames']} tower frames {w}x{h} ({args.tower}, {args.curve}) @ {args.fps:g} fps "
          f"in {s['seconds_to_render']:.1f} s; WL inset {tower.rects['wl']}, NIR inset "
          f"{tower.rects['nir']}, {s['mm_per_px']:.4f} mm per WL pixel")
    for k in ("combined", "tower", "transfer", "truth", "truth_frames", "truth_lesions"):
        if k in s:
            print(f"  {k:14s} {s[k]}")
    return 0 if os.path.exists(s["combined"]) else 1


def run(args) -> int:
    import dataclasses
    import os

    from ..errors import NirfError
    from ..phantom import PhantomParams
    from ..sources import SAMPLE_DIR, SAMPLE_PROFILE

    w, h = args.size
    if w % 2 or h % 2:
        raise NirfError(f"--size {w}x{h}: H.264 in yuv420p needs even sides")
    if not (0 < args.seconds <= 3600):
        raise NirfError(f"--seconds {args.seconds}: must be in (0, 3600]")
    if not (1 <= args.fps <= 240):
        raise NirfError(f"--fps {args.fps}: must be 1..240")
    if not (0 <= args.crf <= 51):
        raise NirfError(f"--crf {args.crf}: must be 0..51")
    frames = max(1, int(round(args.seconds * args.fps)))
    fields = {f.name: (f.default, f.type) for f in dataclasses.fields(PhantomParams)}
    overrides = _parse_set(args.set, fields)
    if args.gain_step is not None:
        overrides["gain_step_s"] = None if args.gain_step < 0 else args.gain_step
    elif "gain_step_s" not in overrides:
        overrides["gain_step_s"] = 0.5 * frames / args.fps
    # _parse_set admits only PhantomParams fields, each converted to its field's type
    params = PhantomParams(seed=args.seed, size=(w, h), fps=float(args.fps), **overrides).validate()
    if args.tower:
        return _run_tower(args, params, frames)
    out = args.out or str(SAMPLE_DIR)
    bundled = os.path.abspath(out) == os.path.abspath(str(SAMPLE_DIR)) and args.name == "sample"
    cal_dir = args.calibration_dir or (
        str(SAMPLE_PROFILE.parent) if bundled else os.path.join(out, "calibration"))
    summary = make_recording(params, out, name=args.name, frames=frames, crf=args.crf,
                             truth=not args.no_truth, cal_dir=cal_dir,
                             progress=not args.no_progress)
    total = sum(os.path.getsize(summary[k]) for k in ("wl", "nir", "truth") if k in summary)
    print(f"wrote {summary['frames']} frames {w}x{h} @ {args.fps:g} fps "
          f"in {summary['seconds_to_render']:.1f} s ({total / 2**20:.1f} MB)")
    for k in ("wl", "nir", "truth", "truth_frames", "truth_lesions", "profile"):
        if k in summary:
            print(f"  {k:14s} {summary[k]}")
    return 0
