"""``OUT/report.html``: a self-contained report of a batch run (plots embedded as PNG data)."""

from __future__ import annotations

import base64
import html
import io

from ..processing.result import format_cell
from .study import SUMMARY_COLUMNS


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _series(study: list, session: str, key: str):
    xs, ys = [], []
    for row in study:
        if row["session"] == session and row.get(key) is not None:
            xs.append(row["time_s"])
            ys.append(row[key])
    return xs, ys


def _figures(summary: list, study: list) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")  # no display in workers or CI
    import matplotlib.pyplot as plt

    names = [s["session"] for s in summary if not s["error"]]
    figs = []
    for key, label in (("tbr", "TBR (T/B)"), ("rim_thickness_mm", "rim thickness (mm)")):
        fig, ax = plt.subplots(figsize=(8, 3))
        plotted = 0
        for name in names:
            xs, ys = _series(study, name, key)
            if xs:
                ax.plot(xs, ys, lw=1, label=name)
                plotted += 1
        ax.set_xlabel("time (s)")
        ax.set_ylabel(label)
        ax.set_title(f"{label} over time")
        if plotted:
            ax.legend(fontsize=7, ncol=3)
        else:  # e.g. no mm per pixel known: say so rather than draw empty axes
            ax.text(0.5, 0.5, "no values in any recording", ha="center", va="center",
                    transform=ax.transAxes)
        figs.append((f"{label} over time, per recording", _png(fig)))
        plt.close(fig)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    for ax, (key, label) in zip(axes, (("tbr", "TBR"), ("rim_thickness_mm", "thickness (mm)"),
                                      ("rim_completeness", "completeness"))):
        vals = [r[key] for r in study if r.get(key) is not None]
        if vals:
            ax.hist(vals, bins=30, color="#3a7")
        ax.set_title(label)
        ax.set_ylabel("frames")
    fig.suptitle("Distributions across the study (frames with a rim)")
    figs.append(("distributions across the study", _png(fig)))
    plt.close(fig)
    return figs


def write_report(path: str, summary: list, study: list,
                 title: str = "nirf-overlay batch report") -> None:
    """Write the report to ``path``: the summary table (``summary`` rows, see
    :func:`~.study.summarise`) and plots over the ``study`` frame rows."""
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_cell(s[c]))}</td>" for c in SUMMARY_COLUMNS) + "</tr>"
        for s in summary)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in SUMMARY_COLUMNS)
    display = [s["session"] for s in summary if s.get("nir_signal") == "display"]
    note = ""
    if display:
        note = (f'<p><strong>Ratios of display values:</strong> {html.escape(", ".join(display))} '
                f"{'has' if len(display) == 1 else 'have'} 8-bit display-encoded NIR measured "
                f"without a transfer curve (<code>nir_signal</code> = display); their TBR, "
                f"contrast and rim edges are of display values, not of signal.</p>")
    figs = "".join(f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{b}">'
                   f"<figcaption>{html.escape(t)}</figcaption></figure>" for t, b in _figures(summary, study))
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:90%}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}th{{background:#eee}}
figure{{margin:1em 0}}img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(summary)} recordings, {len(study)} frames. TBR = T/B: mean normalised NIR over the rim
over the median of the surrounding liver. Per-frame tables: <code>study_frames.parquet</code>,
<code>study_frames.csv</code>; per recording: <code>&lt;session&gt;/metrics.csv</code>,
<code>rims.csv</code>.</p>
{note}
<h2>Summary</h2><table><tr>{head}</tr>{rows}</table>
<h2>Plots</h2>{figs}
</body></html>
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)
