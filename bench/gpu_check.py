"""The GPU check of BBAM, sized to finish within minutes on one GPU: everything a first real run
needs to know, in one JSON.

    python bench/gpu_check.py --out bench/results/gpu_check.json            # on a GPU (the default)
    python bench/gpu_check.py --device cpu --min-size 64 --steps 2 ...      # the same path, tiny, on a CPU

On one device, with torchvision's Faster R-CNN ResNet-50-FPN (COCO weights when the file is in the
torch hub cache, else seeded random weights, and the JSON says which), at short side 800:

1. ``reference`` (the published loop: one box at a time, weight gradients on) against ``batched``
   (ours): seconds per box, the speedup, and their agreement (mean IoU of the tight masks);
2. ``--amp`` (bfloat16 autocast of every detector pass) against float32: agreement and speed;
3. ``--batch-images 4`` against 1 on photos of one size: seconds per box;
4. peak GPU memory of each;
5. the stage end to end with ``--gpus 0`` (``--gpus cpu`` on a CPU) on the same photos;
6. the projected GPU-hours of 25,000 boxes (VOC train_aug) at the batched speed;
7. the learned engines (``bench/gpu_engines.py``): SAM ViT-B / ViT-H with random weights (image
   embeddings/s, boxes/s decoding all boxes of a photo at once, float32 and half, peak memory), IS-Net
   on box crops at ``--isnet-sizes`` (the ONNX file of ``--isnet`` when present), HED's images/s.

Photos come from ``--data-root`` (the photos of coco128-voc-dev by default): the first ``--images``
with at least two boxes, at most ``--max-boxes`` each. With random weights every box is relabelled
as one class whose logit the detector favours (``bench/bbam.py``), so that boxes have positives and
the timings are the real detector's; those maps say nothing about quality.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bbam import bench_detector, iou  # noqa: E402
from gpu_engines import engines  # noqa: E402
from results_json import emit  # noqa: E402

from pseudolabel import __version__  # noqa: E402
from pseudolabel.catalog import load_image, open_dataset  # noqa: E402
from pseudolabel.models.detector import Detector, default_weights  # noqa: E402
from pseudolabel.core.records import ImageRecord  # noqa: E402
from pseudolabel.stages.bbam import BBAMConfig, process_many  # noqa: E402
from pseudolabel.catalog.vocwrite import make_voc_folders, voc_xml, write_split  # noqa: E402

BOXES_TRAIN_AUG = 25_000


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(det, records, images, config, groups=None) -> tuple[list, float, int]:
    """Results of ``records`` (one photo at a time, or in ``groups``), wall seconds, peak bytes."""
    if det.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(det.device)
    _sync(det.device)
    start = time.perf_counter()
    results = []
    for group in groups or [[i] for i in range(len(records))]:
        results += process_many(det, [records[i] for i in group], [images[i] for i in group], config)
    _sync(det.device)
    peak = torch.cuda.max_memory_allocated(det.device) if det.device.type == "cuda" else 0
    return results, time.perf_counter() - start, peak


def agreement(a, b) -> float:
    return round(float(np.mean([iou(x, y) for ra, rb in zip(a, b) for x, y in zip(ra.masks, rb.masks)])), 4)


def photos(args, relabel: int | None) -> list[ImageRecord]:
    dataset = open_dataset(args.data_root)
    out = []
    for r in dataset.records(args.split):
        if isinstance(r, ImageRecord) and len(r.objects) >= 2:
            objects = r.objects[: args.max_boxes]
            if relabel is not None:
                objects = tuple(dataclasses.replace(o, class_id=relabel) for o in objects)
            out.append(dataclasses.replace(r, objects=objects))
        if len(out) == args.images:
            break
    return out


def same_size_groups(records: list[ImageRecord], size: int) -> list[list[int]]:
    """Indices of the photos of the most common size, in groups of ``size``."""
    common = collections.Counter((r.width, r.height) for r in records).most_common(1)[0][0]
    same = [i for i, r in enumerate(records) if (r.width, r.height) == common]
    return [same[i:i + size] for i in range(0, len(same), size)]


def stage_end_to_end(records, weights: Path, config: BBAMConfig, device: torch.device, work: Path) -> dict:
    """``pseudolabel bbam --gpus 0`` (or ``--gpus cpu``) on a VOC tree of ``records``."""
    root = make_voc_folders(work / "VOC2012")
    for r in records:
        (root / "JPEGImages" / f"{r.image_id}.jpg").symlink_to(Path(r.image_path).resolve())
        (root / "Annotations" / f"{r.image_id}.xml").write_text(voc_xml(r.image_id, r.width, r.height, r.objects))
    write_split(root, "train", [r.image_id for r in records])
    gpus = "cpu" if device.type == "cpu" else str(device.index or 0)
    cmd = [sys.executable, "-m", "pseudolabel", "-q", "bbam", "--data-root", str(root), "--cache", str(work / "cache"),
           "--gpus", gpus, "--weights", str(weights), "--steps", str(config.steps), "--num-jitter",
           str(config.num_jitter), "--min-size", str(config.min_size), "--max-size", str(config.max_size)]
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    out = {"command": " ".join(cmd[2:]), "returncode": run.returncode, "wall_s": round(wall, 2)}
    if run.returncode:
        out["stderr"] = run.stderr[-2000:]
        return out
    from pseudolabel.store import LabelStore
    store = LabelStore(work / "cache" / "VOC2012" / "train" / "bbam.h5")
    log = json.loads(store.meta["run_log"])
    statuses = collections.Counter()
    for i in store.ids:
        for name, flags in store[i].objects.items():
            if name.startswith("status_"):
                statuses[name[len("status_"):]] += int(flags.sum())
    out.update(images=len(store.ids), failed=len(store.failed), devices=[s.get("device") for s in log if "device" in s],
               statuses=dict(statuses))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=str(HERE.parents[1] / "shared" / "data" / "coco128-voc-dev"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--max-boxes", type=int, default=3)
    ap.add_argument("--min-size", type=int, default=800)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--num-jitter", type=int, default=1000)
    ap.add_argument("--reference-images", type=int, default=2, help="photos the (slow) published loop runs on")
    ap.add_argument("--class-id", type=int, default=15)
    ap.add_argument("--sam-variants", default="vit_b,vit_h", help="SAM variants (random weights); tiny: a small SAM")
    ap.add_argument("--isnet", default=str(HERE.parents[1] / "shared" / "models" / "isnet" / "isnet-medium.onnx"))
    ap.add_argument("--isnet-sizes", default="320,512,1024")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    max_size = round(args.min_size * 1333 / 800)
    coco = default_weights()
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    if coco.is_file():
        det = Detector.from_checkpoint(coco, device=device, min_size=args.min_size, max_size=max_size)
        weights, relabel, weights_said = coco, None, f"torchvision COCO weights ({coco})"
    else:
        model = bench_detector("resnet50", args.min_size, max_size, args.class_id)
        weights, relabel = work / "random.pth", args.class_id
        torch.save(model.state_dict(), weights)
        det = Detector(model, device=device)
        weights_said = (f"ResNet-50-FPN with seeded random weights ({coco} is absent): speed is the real "
                        f"detector's, the maps mean nothing")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    records = photos(args, relabel)
    images = [load_image(r) for r in records]
    boxes = sum(len(r.objects) for r in records)
    base = BBAMConfig(steps=args.steps, num_jitter=args.num_jitter, min_size=args.min_size, max_size=max_size)
    print(f"{len(records)} photos, {boxes} boxes on {device}; {weights_said}", file=sys.stderr)

    timed(det, records[:1], images[:1], dataclasses.replace(base, steps=2))       # warm-up (kernels, cuDNN)
    batched, t_batched, m_batched = timed(det, records, images, base)
    n_ref = max(1, min(args.reference_images, len(records)))
    ref_records, ref_images = records[:n_ref], images[:n_ref]
    reference, t_ref, m_ref = timed(det, ref_records, ref_images, dataclasses.replace(base, reference=True))
    ref_boxes = sum(len(r.objects) for r in ref_records)
    amp, t_amp, m_amp = timed(det, records, images, dataclasses.replace(base, amp=True))
    groups = same_size_groups(records, 4)
    grouped_ids = [i for g in groups for i in g]
    grouped_boxes = sum(len(records[i].objects) for i in grouped_ids)
    one, t_one, _ = timed(det, records, images, base, [[i] for i in grouped_ids])
    four, t_four, m_four = timed(det, records, images, dataclasses.replace(base, batch_images=4), groups)
    per_box = {"batched": t_batched / boxes, "reference": t_ref / ref_boxes, "amp": t_amp / boxes}
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} "
                                                                                   f"threads)",
        "host": platform.node(), "torch": torch.__version__, "pseudolabel": __version__,
        "weights": weights_said, "min_size": args.min_size, "max_size": max_size, "steps": args.steps,
        "num_jitter": args.num_jitter, "photos": len(records), "boxes": boxes,
        "seconds_per_box": {k: round(v, 3) for k, v in per_box.items()},
        "speedup_over_reference": round(per_box["reference"] / per_box["batched"], 2),
        "agreement_with_reference": agreement(batched[:n_ref], reference),
        "amp": {"agreement_with_float32": agreement(batched, amp),
                "speedup_over_float32": round(t_batched / t_amp, 2)},
        "batch_images_4": {"photos": len(grouped_ids), "boxes": grouped_boxes,
                           "seconds_per_box_1": round(t_one / max(grouped_boxes, 1), 3),
                           "seconds_per_box_4": round(t_four / max(grouped_boxes, 1), 3),
                           "speedup": round(t_one / t_four, 2), "agreement": agreement(one, four)},
        "peak_memory_mib": {k: round(v / 2**20) for k, v in (("batched", m_batched), ("reference", m_ref),
                                                             ("amp", m_amp), ("batch_images_4", m_four))},
        "projected_hours_25000_boxes": {k: round(v * BOXES_TRAIN_AUG / 3600, 2) for k, v in per_box.items()},
        "stage_end_to_end": stage_end_to_end(records, weights, base, device, work),
        "engines": engines(records, images, device, args.sam_variants.split(","), Path(args.isnet),
                           [int(s) for s in args.isnet_sizes.split(",")]),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
