"""The pipeline at the size of VOC's train_aug, on this machine: time, memory and disk per stage.

Builds VOC-layout trees of N ids (default 10,582, train_aug's size) and of a sample of M ids out of
real photos and their annotations by symbolic links (the dev photos repeated under new ids; nothing
is copied), then runs each stage as a user would (``pseudolabel STAGE --jobs 0`` in a fresh
process) and reports per stage: wall time, images/s, boxes/s, peak resident memory of the parent
process and of its largest worker, and store bytes per image.

Stages cheap enough run on all N images: boxes, grabcut, fuse (grabcut with boxes) and the PNG
export. Stages too long for this machine (proposals, refine, and fuse over refine) run on the
sample of M images; their time for N is a *projection*, wall x N / M, marked as such. boxes and
grabcut also run on the sample, so the parent's peak memory at M and at N shows whether memory
grows with N.

    python bench/scale.py --out bench/results/scale.json               # N = 10,582, M = 300
    python bench/scale.py --images 500 --sample 50 --out /tmp/s.json   # a quick look

With ``--recipe RECIPE`` (a shipped recipe's name or a file) it measures that recipe instead: each
of its steps on the sample of M ids, one fresh ``pseudolabel run`` process per step (a one-step
recipe with that step's configuration and run options), and projects each to N ids (every row a
projection, marked); ``projected_total_s`` (top level of the JSON) is the recipe's projected total:

    python bench/scale.py --recipe grabcut_plus --sample 100 --out bench/results/scale_grabcut_plus.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEV = HERE.parents[1] / "shared" / "data" / "coco128-voc-dev"


def build_tree(src: Path, dst: Path, n: int) -> list[str]:
    """A VOC tree of ``n`` ids at ``dst``, each a link to a photo (and its XML and masks) of ``src``'s
    train split, in turn; returns the ids."""
    ids_src = (src / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    if dst.exists():
        shutil.rmtree(dst)
    for sub in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (dst / sub).mkdir(parents=True)
    ids = []
    for k in range(n):
        orig = ids_src[k % len(ids_src)]
        new = f"s{k:05d}_{orig}"
        for sub, ext in (("JPEGImages", ".jpg"), ("Annotations", ".xml"), ("SegmentationClass", ".png"),
                         ("SegmentationObject", ".png")):
            target = src / sub / f"{orig}{ext}"
            if target.exists():
                os.symlink(target.resolve(), dst / sub / f"{new}{ext}")
        ids.append(new)
    (dst / "ImageSets" / "Segmentation" / "train.txt").write_text("".join(f"{i}\n" for i in ids))
    return ids


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _hwm(pid: int) -> int:
    """Peak resident memory (VmHWM) of a live process in bytes, 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str]) -> dict:
    """Run ``cmd``; wall seconds and the peak resident memory of the process and of its largest
    child (a worker), read from /proc while it runs."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks = {"parent": 0, "worker": 0}

    def watch():
        while proc.poll() is None:
            peaks["parent"] = max(peaks["parent"], _hwm(proc.pid))
            for child in _children(proc.pid):
                peaks["worker"] = max(peaks["worker"], _hwm(child))
            time.sleep(0.2)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    _, err = proc.communicate()
    thread.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return {"wall_s": round(time.perf_counter() - start, 2), "peak_rss_parent_mib": round(peaks["parent"] / 2**20, 1),
            "peak_rss_worker_mib": round(peaks["worker"] / 2**20, 1) if peaks["worker"] else None}


def stage(name: str, tree: Path, cache: Path, jobs: int, boxes: int, images: int, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "pseudolabel", "-q", name, "--data-root", str(tree), "--cache", str(cache),
           "--split", "train", "--jobs", str(jobs), *extra]
    row = {"stage": name if not extra else f"{name} {' '.join(extra)}", "images": images, **run_measured(cmd)}
    store = cache / tree.name / "train" / f"{name}.h5"
    row["store_bytes_per_image"] = round(store.resolve().stat().st_size / images) if store.exists() else None
    row["images_per_s"] = round(images / row["wall_s"], 2)
    row["boxes_per_s"] = round(boxes / row["wall_s"], 1) if name not in ("proposals",) else None
    print(f"  {row['stage']:<32} {images:>6} images {row['wall_s']:>8.1f} s  {row['images_per_s']:>7.2f} img/s  "
          f"parent {row['peak_rss_parent_mib']} MiB, worker {row['peak_rss_worker_mib']} MiB, "
          f"{row['store_bytes_per_image']} B/image", file=sys.stderr)
    return row


def export(tree: Path, cache: Path, images: int) -> dict:
    out = cache / "export-grabcut"
    cmd = [sys.executable, "-m", "pseudolabel", "-q", "export", "--data-root", str(tree), "--cache", str(cache),
           "--split", "train", "--stage", "grabcut", "--format", "png", "--out", str(out)]
    row = {"stage": "export grabcut (png)", "images": images, **run_measured(cmd)}
    size = sum(p.stat().st_size for p in out.rglob("*.png"))
    row.update(images_per_s=round(images / row["wall_s"], 2), store_bytes_per_image=round(size / images),
               boxes_per_s=None)
    print(f"  {row['stage']:<32} {images:>6} images {row['wall_s']:>8.1f} s", file=sys.stderr)
    return row


def _toml(values: dict) -> str:
    """``key = value`` lines (JSON's spelling of strings, numbers, booleans and lists is TOML's)."""
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def one_step(step, recipe) -> str:
    """A recipe of one step of ``recipe`` (its configuration and run options, the recipe's own)."""
    from pseudolabel.core.config import config_to_mapping
    head = _toml(dict(recipe.options))
    if step.kind == "export":
        body = _toml({"export": step.stage, "format": step.fmt, "instances": step.instances})
        return f"{head}[[step]]\n{body}"
    body = _toml({"stage": step.stage, **step.options})
    return f"{head}[[step]]\n{body}[step.config]\n{_toml(config_to_mapping(step.config))}"


def measure_recipe(args, tree: Path, images: int, boxes: int, full_n: int) -> dict:
    """Each step of ``args.recipe`` on ``tree`` in a fresh process, projected to ``full_n`` ids."""
    from pseudolabel.app.recipe import load_recipe
    recipe = load_recipe(args.recipe)
    cache, rows = Path(args.work) / "cache-recipe", []
    if cache.exists():
        shutil.rmtree(cache)
    for n, step in enumerate(recipe.steps, start=1):
        path = Path(args.work) / f"step-{n}.toml"
        path.write_text(one_step(step, recipe))
        cmd = [sys.executable, "-m", "pseudolabel", "-q", "run", str(path), "--data-root", str(tree), "--cache",
               str(cache), "--split", "train"] + (["--jobs", str(args.jobs)] if args.jobs is not None else [])
        row = {"step": step.describe(), "images": images, **run_measured(cmd)}
        store = cache / tree.name / "train" / f"{step.stage}.h5"
        row["store_bytes_per_image"] = round(store.resolve().stat().st_size / images) \
            if step.kind == "stage" and store.exists() else None
        row["images_per_s"] = round(images / row["wall_s"], 2)
        row["projected_wall_s_for_full"] = round(row["wall_s"] * full_n / images, 1)
        rows.append(row)
        print(f"  {row['step']:<24} {row['wall_s']:>8.1f} s  {row['images_per_s']:>7.2f} img/s  projected "
              f"{row['projected_wall_s_for_full'] / 3600:.2f} h", file=sys.stderr)
    return {"recipe": recipe.name, "recipe_file": str(recipe.path), "images_sample": images, "boxes_sample": boxes,
            "images_full": full_n, "jobs": args.jobs, "cpu_count": os.cpu_count(), "data_root": str(args.data_root),
            "projected_total_s": round(sum(r["projected_wall_s_for_full"] for r in rows), 1),
            "projection": "every row ran on the sample; projected_wall_s_for_full = wall_s x images_full / images",
            "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(DEV), help="VOC-layout folder of real photos [%(default)s]")
    ap.add_argument("--images", type=int, default=10582, help="N: ids in the full tree [%(default)s]")
    ap.add_argument("--sample", type=int, default=300, help="M: ids for the stages projected [%(default)s]")
    ap.add_argument("--jobs", type=int, default=0, help="--jobs of every stage [%(default)s: all cores]")
    ap.add_argument("--work", default="/tmp/pseudolabel-scale", help="where trees and stores go [%(default)s]")
    ap.add_argument("--out", default=None, help="JSON file for the results")
    ap.add_argument("--recipe", default=None, help="measure this recipe's steps (a shipped name or a file)")
    args = ap.parse_args()
    src, work = Path(args.data_root), Path(args.work)
    sys.path.insert(0, str(HERE.parent))
    from pseudolabel.catalog import open_dataset
    if args.recipe:
        tree = work / "VOC-sample"
        build_tree(src, tree, args.sample)
        boxes = sum(len(getattr(r, "objects", ())) for r in open_dataset(tree).records("train"))
        result = measure_recipe(args, tree, args.sample, boxes, args.images)
        text = json.dumps(result, indent=2)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text + "\n")
        print(text)
        return 0
    trees = {}
    for label, n in (("full", args.images), ("sample", args.sample)):
        tree = work / f"VOC-{label}"
        start = time.perf_counter()
        build_tree(src, tree, n)
        records = open_dataset(tree).records("train")
        trees[label] = (tree, n, sum(len(getattr(r, "objects", ())) for r in records))
        print(f"{label} tree: {n} ids, {trees[label][2]} boxes, linked in {time.perf_counter() - start:.1f} s",
              file=sys.stderr)
    rows = []
    full_n = args.images

    def save(complete: bool) -> dict:
        """The results so far (written after every stage, so a run cut short still leaves its rows)."""
        for row in rows:
            if row["tree"] == "sample" and row["stage"].split()[0] in ("proposals", "refine") or \
                    row["stage"] == "fuse --sources grabcut,refine":
                row["projected_wall_s_for_full"] = round(row["wall_s"] * full_n / row["images"], 1)
        result = {"images_full": full_n, "images_sample": args.sample, "boxes_full": trees["full"][2],
                  "boxes_sample": trees["sample"][2], "jobs": args.jobs, "cpu_count": os.cpu_count(),
                  "data_root": str(src), "complete": complete, "rows": rows}
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        return result

    for label, names in (("sample", ("boxes", "grabcut", "proposals", "refine")), ("full", ("boxes", "grabcut"))):
        tree, n, boxes = trees[label]
        cache = work / f"cache-{label}"
        if cache.exists():
            shutil.rmtree(cache)
        print(f"{label}:", file=sys.stderr)
        for name in names:
            rows.append({"tree": label, **stage(name, tree, cache, args.jobs, boxes, n)})
            save(False)
        extra = ("--sources", "grabcut,refine") if label == "sample" else ("--sources", "grabcut,boxes")
        rows.append({"tree": label, **stage("fuse", tree, cache, args.jobs, boxes, n, *extra)})
        save(False)
        if label == "full":
            rows.append({"tree": label, **export(tree, cache, n)})
    result = save(True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
