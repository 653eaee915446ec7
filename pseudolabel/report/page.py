"""``pseudolabel report``: one static HTML page (no server; it opens from disk) that shows what
the labels of some stages are worth before anyone trains on them.

Per stage, against the split's human masks: per-class IoU side by side (a bar chart), mIoU and
coverage, the filling rate per class (Box2Seg's eta: labelled share of the class's boxes), and the
per-object flags the stage recorded (GrabCut guards, BBAM and refine statuses). Then a grid of
overlays (the photo with its boxes, then each stage's labels over it, ignore hatched, a legend)
for the worst, median and best images by the per-image mIoU of the *last* stage listed, each
linking to a larger picture. Plots are matplotlib PNGs, written next to the page.

::

    OUT/index.html
    OUT/iou_per_class.png  OUT/filling_rate.png  OUT/legend.png
    OUT/overlays/<id>.png  OUT/overlays/<id>_large.png
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from . import overlay
from ..catalog import Dataset
from ..catalog.pixels import load_photo
from ..core.errors import ConfigError
from ..evaluation.semantic import evaluate_store
from ..core.progress import Progress
from ..store.reader import LabelStore

SMALL, LARGE = 160, 480


@dataclass
class StageFigures:
    name: str
    store: LabelStore
    report: dict[str, Any]
    filling: dict[str, dict[str, float]]          # class -> {"mean", "median", "images"}
    flags: dict[str, int]                         # per-object flag -> objects with it set
    objects: int


def _stage_figures(name: str, store: LabelStore, dataset: Dataset, split: str, progress: bool) -> StageFigures:
    """Scores, filling rates and flag counts of one store, in one pass over it."""
    names = store.labels.names
    rates = {c: [] for c in range(1, len(names))}
    flags: dict[str, int] = {}
    objects = [0]

    def visit(s) -> None:
        for c in np.unique(s.classes):
            if np.isfinite(s.filling_rate[c]):
                rates[int(c)].append(float(s.filling_rate[c]))
        objects[0] += len(s.classes)
        for key, value in s.objects.items():
            if key.startswith(("guard_", "status_", "loose_status_")):
                flags[key] = flags.get(key, 0) + int(np.count_nonzero(value))

    report = evaluate_store(store, dataset, split, progress=progress, visit=visit).report
    filling = {names[c]: {"mean": float(np.mean(v)), "median": float(np.median(v)), "images": len(v)}
               for c, v in rates.items() if v}
    return StageFigures(name, store, report, filling, flags, objects[0])


def _bars(path: Path, title: str, ylabel: str, series: dict[str, dict[str, float | None]], classes: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.2), dpi=110)
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(classes))
    for j, (name, values) in enumerate(series.items()):
        heights = [values.get(c) if values.get(c) is not None else np.nan for c in classes]
        ax.bar(x + (j - (len(series) - 1) / 2) * width, heights, width, label=name)
    ax.set_xticks(x, classes, rotation=45, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _examples(per_image: list[dict[str, Any]], n: int) -> list[tuple[str, dict[str, Any]]]:
    """``(which, row)``: the ``n`` worst, ``n`` around the median and ``n`` best images by mIoU."""
    scored = sorted((r for r in per_image if r["miou"] is not None), key=lambda r: (r["miou"], r["image_id"]))
    if not scored:
        return []
    mid = max(0, len(scored) // 2 - n // 2)
    picks, seen = [], set()
    for which, rows in (("worst", scored[:n]), ("median", scored[mid:mid + n]), ("best", scored[::-1][:n])):
        for r in rows:
            if r["image_id"] not in seen:
                seen.add(r["image_id"])
                picks.append((which, r))
    return picks


def _overlay(stages: list[StageFigures], image_id: str, height: int) -> Image.Image:
    first = stages[0].store[image_id]
    photo = load_photo(first.image_path, int(first.attrs.get("orientation", 1)))    # the labels' frame
    size = overlay.fit(photo.shape[:2], height)
    names = stages[0].store.labels.names
    tiles = [overlay.caption(overlay.boxes_tile(photo, first.boxes, first.classes, size, names), "photo")]
    for st in stages:
        if image_id in st.store:
            tile = overlay.label_tile(photo, st.store[image_id].label, size)
        else:
            tile = Image.new("RGB", size, (90, 0, 0))
        tiles.append(overlay.caption(tile, st.name))
    return overlay.row(tiles)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _f(x, digits=2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


CSS = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1400px;color:#222}
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
.ex{margin:10px 0}.ex p{margin:2px 0;font-size:.9em}.ex img{border:1px solid #999;max-width:100%}
img.plot{max-width:100%}"""


def build_report(dataset: Dataset, split: str, stores: list[tuple[str, str | os.PathLike]],
                 out: str | os.PathLike, *, examples: int = 3, progress: bool = True,
                 log: Callable[[str], None] = lambda s: None) -> Path:
    """Write the report of ``stores`` (``(name shown, store path)`` pairs, side by side in that
    order; examples chosen by the last one) into the folder ``out``; returns the page."""
    if not stores:
        raise ConfigError("report: no stores given; e.g. --stages grabcut,refine,fuse")
    names = [name for name, _ in stores]
    if len(set(names)) != len(names):
        raise ConfigError(f"report: {','.join(names)} lists a store twice")
    figures = [_stage_figures(name, LabelStore(path), dataset, split, progress) for name, path in stores]
    out = Path(out)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    names = dataset.labels.names
    classes = [c for c in names if any(f.report["per_class"].get(c) is not None for f in figures)]
    _bars(out / "iou_per_class.png", f"IoU per class [{split}]", "IoU (%)",
          {f.name: f.report["per_class"] for f in figures}, classes)
    fill_classes = [c for c in names[1:] if any(c in f.filling for f in figures)]
    _bars(out / "filling_rate.png", "Mean filling rate per class (labelled share of the class's boxes)",
          "filling rate", {f.name: {c: v["mean"] for c, v in f.filling.items()} for f in figures}, fill_classes)
    blocks = _example_blocks(figures, out, examples, progress)
    index = out / "index.html"
    index.write_text(_page(dataset, split, figures, fill_classes, blocks, examples), encoding="utf-8")
    log(f"report of {', '.join(names)} on {len(figures[-1].report['per_image'])} images: {index}")
    return index


def _example_blocks(figures: list[StageFigures], out: Path, examples: int, progress: bool) -> list[str]:
    """The worst, median and best images by the last store's mIoU: their overlays (small and
    large) and the legend of the classes shown, written under ``out``; the page's blocks."""
    picks = _examples(figures[-1].report["per_image"], examples)
    miou = {f.name: {p["image_id"]: p["miou"] for p in f.report["per_image"]} for f in figures}
    shown = set()
    blocks = []
    bar = Progress(len(picks), "report: overlays", enabled=progress)
    for which, r in picks:
        image_id = r["image_id"]
        if image_id in figures[0].store:
            _overlay(figures, image_id, SMALL).save(out / "overlays" / f"{image_id}.png")
            _overlay(figures, image_id, LARGE).save(out / "overlays" / f"{image_id}_large.png")
            shown |= set(figures[0].store[image_id].classes.tolist())
            scores = ", ".join(f"{f.name} {_f(miou[f.name].get(image_id))}" for f in figures)
            blocks.append(f'<div class="ex"><p><b>{which}</b> {html.escape(image_id)}: mIoU {html.escape(scores)}</p>'
                          f'<a href="overlays/{html.escape(image_id)}_large.png">'
                          f'<img src="overlays/{html.escape(image_id)}.png" alt="{html.escape(image_id)}"></a></div>')
        bar.update()
    bar.close()
    overlay.legend(shown or {1}, 900, figures[0].store.labels.names).save(out / "legend.png")
    return blocks


def _page(dataset: Dataset, split: str, figures: list[StageFigures], fill_classes: list[str], blocks: list[str],
          examples: int) -> str:
    """The HTML of the page."""
    summary = _table(["stage", "mIoU", "mIoU (255 = bg)", "coverage", "images", "failed", "store"],
                     [[f.name, _f(f.report["miou"]), _f(f.report["miou_ignore_as_background"]),
                       f"{100 * f.report['coverage']:.2f}%" if f.report["coverage"] is not None else "-",
                       f.report["images"], f.report["failed_images"], f.store.path] for f in figures])
    fill = _table(["class"] + [f"{f.name} mean" for f in figures] + [f"{f.name} median" for f in figures],
                  [[c] + [_f(f.filling.get(c, {}).get("mean"), 3) for f in figures]
                   + [_f(f.filling.get(c, {}).get("median"), 3) for f in figures] for c in fill_classes])
    flag_rows = [[f.name, k, v, f"{100 * v / max(f.objects, 1):.1f}%"] for f in figures for k, v in sorted(f.flags.items())]
    flags = (_table(["stage", "per-object flag", "objects", "share"], flag_rows) if flag_rows
             else "<p>No stage here records per-object flags.</p>")
    names = ", ".join(f.name for f in figures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pseudolabel report: {html.escape(dataset.name)} [{html.escape(split)}]</title>
<style>{CSS}</style></head><body>
<h1>Pseudo labels of {html.escape(dataset.name)} [{html.escape(split)}]: {html.escape(names)}</h1>
<p>Scored against the split's human masks ({html.escape(str(dataset.root))}); ground-truth 255 excluded;
coverage is the share of ground-truth pixels a stage commits to (not 255).</p>
<h2>Summary</h2>{summary}
<h2>IoU per class</h2><img class="plot" src="iou_per_class.png" alt="IoU per class">
<h2>Filling rate per class</h2><img class="plot" src="filling_rate.png" alt="filling rate per class">{fill}
<h2>Guards, fallbacks and statuses</h2>{flags}
<h2>Examples</h2><p>The {examples} worst, median and best images by the mIoU of {html.escape(figures[-1].name)}
(of the classes in each image): the photo with its boxes, then each stage's labels. Click for a larger picture.</p>
<img src="legend.png" alt="legend">
{"".join(blocks) or "<p>No scored images.</p>"}
</body></html>
"""
