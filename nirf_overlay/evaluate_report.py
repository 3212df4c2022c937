"""The accuracy report: ``python -m nirf_overlay.evaluate ... --report DIR``.

DIR gets

- ``sets.csv``: one row per evaluated set (seed): frames, mean / min rim Dice,
  duct pixels labelled rim (%), thickness and TBR error (worst, signed;
  median of absolute), detected fraction;
- ``lesions.csv``: one row per truth lesion: true and measured width,
  thickness error (mm, signed: + = too wide; and against the width as the
  calibration sees it, x the breathing scale), true and measured TBR, TBR
  error (%, signed), true and measured completeness, frames matched;
- ``frames.csv``: one row per scored frame: Dice, duct pixels labelled rim;
- ``worst_NN_seed_S_frame_F.png``: the N frames with the lowest rim Dice,
  the WL image dimmed with the truth rim, the found rim, their overlap and
  duct pixels labelled rim in the colours of :data:`COLOURS`, and a legend
  band of :data:`LEGEND_H` pixels below the image naming seed, frame and Dice;
- ``index.html``: the tables and the pictures in one page (the PNGs embedded,
  no network resources).
"""

from __future__ import annotations

import base64
import csv
import heapq
import html
import os

import numpy as np

from .outputs import make_new_output_dir

#: BGR colour of each kind of pixel in the worst-frame pictures
COLOURS = {
    "truth only (missed)": (0, 200, 0),
    "found only (false rim)": (255, 0, 255),
    "overlap (correct)": (0, 255, 255),
    "duct labelled rim": (255, 255, 0),
}
LEGEND_H = 52  # pixels of legend band below each picture

SET_COLUMNS = ["set", "frames", "mean_dice", "min_dice", "duct_pct_labelled_rim",
               "distractor_pct_labelled_rim", "thickness_error_mm_max", "thickness_error_mm_median",
               "tbr_error_pct_max", "tbr_error_pct_median", "dice_before_gain_step",
               "dice_after_gain_step", "detected"]
LESION_COLUMNS = ["set", "lesion", "rim_width_mm", "thickness_mm", "thickness_error_mm",
                  "thickness_error_seen_mm", "tbr_true",
                  "tbr", "tbr_error_pct", "completeness_true", "completeness", "blur_sigma_mm",
                  "frames_matched"]
FRAME_COLUMNS = ["set", "frame", "dice", "duct_px_labelled_rim", "duct_px", "tbr_error",
                 "thickness_error_mm"]


class WorstFrames:
    """Keeps the ``n`` lowest-Dice frames offered (WL, found and true masks).

    ``run`` names the set the next offers belong to (e.g. ``"seed 500"``).
    """

    def __init__(self, n: int = 6):
        self.n = int(n)
        self.run = ""
        self._heap: list = []  # (-dice, order, record): the best of the kept on top
        self._order = 0

    def offer(self, dice: float, index: int, wl: np.ndarray, rim: np.ndarray, truth) -> None:
        if self.n <= 0:
            return
        key = (-dice, self._order)
        self._order += 1
        if len(self._heap) >= self.n and key <= self._heap[0][:2]:
            return  # not worse than any kept
        rec = {"set": self.run, "frame": int(index), "dice": float(dice), "wl": wl.copy(),
               "rim": rim.copy(), "truth_rim": truth.rim_mask.copy(), "duct": truth.duct_mask.copy()}
        item = (key[0], key[1], rec)
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, item)
        else:
            heapq.heapreplace(self._heap, item)

    def frames(self) -> list:
        """The kept frames, lowest Dice first."""
        return [r for _, _, r in sorted(self._heap, key=lambda t: (-t[0], t[1]))]


def picture(rec: dict) -> np.ndarray:
    """BGR uint8 (H + LEGEND_H, W, 3): the frame's masks over its dimmed WL, with a legend."""
    import cv2

    wl = rec["wl"]
    if wl.ndim == 2:
        wl = cv2.cvtColor(wl, cv2.COLOR_GRAY2BGR)
    img = (wl.astype(np.uint16) // 2).astype(np.uint8)
    found, true, duct = rec["rim"], rec["truth_rim"], rec["duct"]
    kinds = [true & ~found, found & ~true, found & true, found & duct]
    for mask, colour in zip(kinds, COLOURS.values()):
        img[mask] = colour
    h, w = img.shape[:2]
    band = np.zeros((LEGEND_H, w, 3), np.uint8)
    text = f"{rec['set']}  frame {rec['frame']}  rim Dice {rec['dice']:.3f}"
    cv2.putText(band, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    for k, (name, colour) in enumerate(COLOURS.items()):  # two entries a row
        x, y = 4 + (k % 2) * 160, 30 + (k // 2) * 16
        cv2.rectangle(band, (x, y - 10), (x + 10, y), colour, -1)
        cv2.putText(band, name, (x + 14, y), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return np.vstack([img, band])


def _fmt(v, scale=1.0):
    return "" if v is None else f"{v * scale:.6g}"


def _set_row(name: str, r: dict) -> dict:
    pct = ("duct_fraction", "distractor_fraction", "tbr_error_max", "tbr_error_median")
    row = {"set": name}
    for col in SET_COLUMNS[1:]:
        key = {"duct_pct_labelled_rim": "duct_fraction",
               "distractor_pct_labelled_rim": "distractor_fraction",
               "tbr_error_pct_max": "tbr_error_max", "tbr_error_pct_median": "tbr_error_median"}.get(col, col)
        row[col] = _fmt(r.get(key), 100.0 if key in pct else 1.0)
    return row


def tables(rows: list) -> dict:
    """Table name -> (columns, list of row dicts of strings) for ``[(set name, figures)]``."""
    sets, lesions, frames = [], [], []
    for name, r in rows:
        sets.append(_set_row(name, r))
        for lid, s in r["per_lesion"].items():
            row = {"set": name, "lesion": str(lid)}
            for col in LESION_COLUMNS[2:]:
                key = "tbr_error" if col == "tbr_error_pct" else col
                row[col] = _fmt(s.get(key), 100.0 if key == "tbr_error" else 1.0)
            lesions.append(row)
        for f in r.get("per_frame", []):
            frames.append({"set": name, **{c: _fmt(f[c]) for c in FRAME_COLUMNS[1:]}})
    return {"sets": (SET_COLUMNS, sets), "lesions": (LESION_COLUMNS, lesions),
            "frames": (FRAME_COLUMNS, frames)}


def write_report(out_dir: str, rows: list, worst: WorstFrames) -> list:
    """Write the CSVs, the worst-frame PNGs and ``index.html`` into ``out_dir``; return the paths."""
    import cv2

    make_new_output_dir(out_dir, "report directory")
    written = []
    tabs = tables(rows)
    for name, (cols, body) in tabs.items():
        path = os.path.join(out_dir, f"{name}.csv")
        with open(path, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=cols)
            wr.writeheader()
            wr.writerows(body)
        written.append(path)
    pngs = []
    for k, rec in enumerate(worst.frames()):
        tag = rec["set"].replace(" ", "_")
        path = os.path.join(out_dir, f"worst_{k + 1:02d}_{tag}_frame_{rec['frame']}.png")
        ok, buf = cv2.imencode(".png", picture(rec))
        if not ok:
            raise RuntimeError(f"{path}: PNG encoding failed")
        with open(path, "wb") as f:
            f.write(buf.tobytes())
        pngs.append((path, rec, buf.tobytes()))
        written.append(path)
    path = os.path.join(out_dir, "index.html")
    with open(path, "w") as f:
        f.write(_html(tabs, pngs))
    written.append(path)
    return written


def _html(tabs: dict, pngs: list) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>nirf-overlay accuracy report"
             "</title><style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;"
             "margin-bottom:1.5em}td,th{border:1px solid #999;padding:2px 6px;text-align:right}"
             "img{max-width:100%;display:block;margin-bottom:1em}</style></head><body>",
             "<h1>Rim accuracy against phantom truth</h1>",
             "<p>Thickness error: measured minus true, + = too wide. TBR error: measured / true - 1."
             "</p>"]
    titles = {"sets": "Per set", "lesions": "Per lesion", "frames": "Per frame"}
    for name, (cols, body) in tabs.items():
        parts.append(f"<h2>{titles[name]} ({esc(name)}.csv)</h2><table><tr>")
        parts += [f"<th>{esc(c)}</th>" for c in cols]
        parts.append("</tr>")
        for row in body:
            parts.append("<tr>" + "".join(f"<td>{esc(row[c])}</td>" for c in cols) + "</tr>")
        parts.append("</table>")
    parts.append(f"<h2>Worst frames (lowest rim Dice, {len(pngs)})</h2>")
    for path, rec, data in pngs:
        b64 = base64.b64encode(data).decode("ascii")
        cap = f"{rec['set']}, frame {rec['frame']}, rim Dice {rec['dice']:.3f} ({os.path.basename(path)})"
        parts.append(f"<p>{esc(cap)}</p><img alt='{esc(cap)}' src='data:image/png;base64,{b64}'>")
    parts.append("</body></html>\n")
    return "".join(parts)
