"""The learned engines' part of the GPU check (``bench/gpu_check.py``): SAM ViT-B and ViT-H with
random weights at real image sizes (images/s for the image embedding, boxes/s for decoding all of
a photo's boxes in one batched call, peak memory), IS-Net on box crops (the ONNX file when it is
there; onnxruntime's CUDA provider when installed), and HED (random weights) on whole photos.
Random weights: the speed is the real networks', the masks mean nothing. ``--sam-variants tiny``
runs a small SAM of the package's own classes (the CPU test)."""
from __future__ import annotations

import time
from pathlib import Path

import torch


def _peak(device: torch.device) -> int:
    return round(torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else 0


def _reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _sam_model(variant: str):
    if variant == "tiny":
        import sys
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.test_prompt import tiny_sam
        return tiny_sam()
    from segment_anything import sam_model_registry
    return sam_model_registry[variant](checkpoint=None)


def sam_speed(variant: str, records, images, device: torch.device, half: bool) -> dict:
    """Embedding and batched decoding of every photo's boxes with a random-weight SAM."""
    from segment_anything import SamPredictor

    from pseudolabel.models.sam import sam_batch
    predictor = SamPredictor(_sam_model(variant).to(device).eval())
    sam_batch(predictor, images[0], records[0].boxes(), half=half)                     # warm-up
    _reset(device)
    embed = decode = 0.0
    for r, image in zip(records, images):
        start = time.perf_counter()
        with torch.inference_mode(), (torch.autocast("cuda", dtype=torch.float16) if half and device.type == "cuda"
                                      else torch.autocast("cpu", enabled=False)):
            predictor.set_image(image)
        _sync(device)
        embed += time.perf_counter() - start
        start = time.perf_counter()
        sam_batch(predictor, image, r.boxes(), half=half)
        _sync(device)
        decode += time.perf_counter() - start - 0.0
    boxes = sum(len(r.objects) for r in records)
    return {"images_per_s_embedding": round(len(records) / embed, 2),
            "boxes_per_s_end_to_end": round(boxes / decode, 2), "peak_memory_mib": _peak(device),
            "half": half, "image_sizes": sorted({f"{i.shape[1]}x{i.shape[0]}" for i in images})}


def isnet_speed(path: Path, records, images, device: torch.device, sizes: list[int]) -> dict:
    """Seconds per box of IS-Net on the photos' box crops at each input size."""
    from pseudolabel.algorithms.prompt import crop_window
    from pseudolabel.models.isnet import isnet_batch, load_isnet
    session = load_isnet(str(path), str(device))
    crops = [image[y0:y1, x0:x1] for r, image in zip(records, images)
             for x0, y0, x1, y1 in (crop_window(b, image.shape[:2], 0.1) for b in r.boxes())]
    out = {"providers": session.get_providers(), "boxes": len(crops)}
    for size in sizes:
        isnet_batch(session, crops[:1], size)                                          # warm-up
        start = time.perf_counter()
        for crop in crops:
            isnet_batch(session, [crop], size)
        out[f"seconds_per_box_{size}"] = round((time.perf_counter() - start) / len(crops), 4)
    return out


def hed_speed(images, device: torch.device) -> dict:
    """Images/s of HED (random weights) at the photos' full resolution."""
    from pseudolabel.models.hed import build_hed, hed_edges
    model = build_hed().to(device).eval()
    hed_edges(model, images[0], str(device))
    _reset(device)
    start = time.perf_counter()
    for image in images:
        hed_edges(model, image, str(device))
    _sync(device)
    return {"images_per_s": round(len(images) / (time.perf_counter() - start), 2), "peak_memory_mib": _peak(device)}


def engines(records, images, device: torch.device, sam_variants: list[str], isnet: Path | None,
            isnet_sizes: list[int]) -> dict:
    """The engines' figures on these photos (see the module docstring)."""
    out: dict = {"sam": {}}
    for variant in sam_variants:
        out["sam"][variant] = sam_speed(variant, records, images, device, half=False)
        if device.type == "cuda":
            out["sam"][f"{variant}_half"] = sam_speed(variant, records, images, device, half=True)
    if isnet is not None and Path(isnet).is_file():
        out["isnet"] = isnet_speed(Path(isnet), records, images, device, isnet_sizes)
    else:
        out["isnet"] = f"skipped: {isnet} is absent"
    out["hed"] = hed_speed(images, device)
    return out
