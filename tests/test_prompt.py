"""Learned, box-prompted mask engines (issue 27): SAM (a tiny SAM built from the package's own
classes, random weights) and IS-Net (the ONNX file in ../shared/models when present), the prompt
stage's store, composition, and its use downstream (grabcut --init-from, refine, fuse)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pseudolabel.algorithms.prompt import PromptParams, masks_and_fallbacks, prompt_label
from pseudolabel.catalog import open_dataset
from pseudolabel.core.errors import ConfigError
from pseudolabel.runner import run
from pseudolabel.stages import get_stage
from pseudolabel.store import LabelStore

from .conftest import SHARED_DATA

ISNET = SHARED_DATA.parent / "models" / "isnet" / "isnet-medium.onnx"


def tiny_sam(seed: int = 0):
    """A SAM of the package's own classes, small dims, random weights (img_size 128)."""
    from functools import partial
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
    torch.manual_seed(seed)
    sam = Sam(image_encoder=ImageEncoderViT(img_size=128, patch_size=16, embed_dim=32, depth=2, num_heads=2,
                                            out_chans=32, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                            use_rel_pos=True, window_size=4, global_attn_indexes=(1,)),
              prompt_encoder=PromptEncoder(embed_dim=32, image_embedding_size=(8, 8), input_image_size=(128, 128),
                                           mask_in_chans=4),
              mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(
                  depth=1, embedding_dim=32, mlp_dim=64, num_heads=2), transformer_dim=32, iou_head_depth=2,
                  iou_head_hidden_dim=16))
    return sam.eval()


def test_batched_sam_equals_the_packages_predictor_box_by_box():
    pytest.importorskip("segment_anything")
    from segment_anything import SamPredictor
    from pseudolabel.models.sam import sam_batch
    image = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    boxes = np.array([[5, 5, 60, 50], [30, 20, 110, 85], [0, 0, 120, 90], [70, 10, 80, 30]], np.float32)
    predictor = SamPredictor(tiny_sam())
    probs, ious = sam_batch(predictor, image, boxes, multimask=True, batch_boxes=3)   # two calls: 3 + 1
    assert probs.shape == (4, 3, 90, 120) and ious.shape == (4, 3)
    predictor.set_image(image)
    for k, box in enumerate(boxes):
        logits, iou, _ = predictor.predict(box=box, multimask_output=True, return_logits=True)
        assert np.abs(probs[k] - 1 / (1 + np.exp(-logits))).max() < 1e-5
        assert np.abs(ious[k] - iou).max() < 1e-5


def test_sam_checkpoints_are_read_as_weights_and_named_when_missing(tmp_path, invoke, voc_root):
    pytest.importorskip("segment_anything")
    from pseudolabel.models.sam import read_checkpoint
    missing = invoke("prompt", "--data-root", voc_root, "--model", "sam")
    assert missing.exit_code == 1 and len(missing.output.strip().splitlines()) == 1
    assert "sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth, sam_vit_h_4b8939.pth" in missing.output
    gone = invoke("prompt", "--data-root", voc_root, "--model", "sam", "--weights", tmp_path / "sam_vit_h_4b8939.pth")
    assert gone.exit_code == 1 and "SAM checkpoint not found" in gone.output
    torch.save(tiny_sam().state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(ConfigError, match="not a SAM ViT-B/L/H checkpoint"):
        read_checkpoint(tmp_path / "tiny.pth")


def test_the_prompt_stage_with_sam_keeps_soft_masks_and_composes_like_grabcut(voc_root, tmp_path, monkeypatch):
    """The stage through the runner, SAM stood in by the tiny one (the real checkpoints are GBs)."""
    pytest.importorskip("segment_anything")
    from segment_anything import SamPredictor
    from pseudolabel.models import cache
    monkeypatch.setattr(cache, "sam", lambda weights, device: SamPredictor(tiny_sam()))
    import dataclasses
    from pseudolabel.stages import STAGES
    monkeypatch.setitem(STAGES._loaded, "prompt", dataclasses.replace(get_stage("prompt"), check=lambda config: None))
    config = get_stage("prompt").config_class(model="sam", weights="tiny", multimask="fill", threshold=0.5)
    store = LabelStore(run("prompt", config, open_dataset(voc_root), "train", tmp_path, progress=False).store,
                       load_masks=True)
    s = store[0]
    assert s.maps.shape == s.masks.shape and s.maps.dtype == np.float32
    assert set(s.objects) == {"candidate", "predicted_iou", "fallback"}
    assert np.allclose(s.maps * 255, np.round(s.maps * 255), atol=0.2)      # 1/255 steps, float16
    for k, (x0, y0, x1, y1) in enumerate(s.boxes):                          # nothing outside its box
        outside = np.ones(s.masks.shape[1:], bool)
        outside[y0:y1, x0:x1] = False
        assert not s.masks[k][outside].any() and not s.maps[k][outside].any()
    params = get_stage("prompt").config_class(**s.config)
    masks, fallback = masks_and_fallbacks(s.maps, s.boxes, params)
    assert np.array_equal(masks, s.masks) and np.array_equal(fallback, s.objects["fallback"].astype(bool))
    assert np.array_equal(prompt_label(s.maps, masks, fallback, s.boxes, s.classes, params), s.label)


def test_prompt_composition_smaller_in_front_and_an_ignore_band():
    p = np.zeros((2, 20, 20), np.float32)
    p[0, 2:18, 2:18] = 0.95                       # a large object
    p[0, 2:18, 2:4] = 0.5                         # its uncertain edge
    p[1, 8:12, 8:12] = 0.9                        # a small object in front
    boxes = np.array([[2, 2, 18, 18], [7, 7, 13, 13]])
    params = PromptParams()
    masks, fallback = masks_and_fallbacks(p, boxes, params)
    label = prompt_label(p, masks, fallback, boxes, np.array([3, 5]), params)
    assert (label[8:12, 8:12] == 5).all() and label[5, 10] == 3 and (label[2:18, 2:4] == 255).all()
    assert label[0, 0] == 0 and not fallback.any()
    p[1] = 0.0                                    # the small object lost: its box, ring ignored
    masks, fallback = masks_and_fallbacks(p, boxes, params)
    label = prompt_label(p, masks, fallback, boxes, np.array([3, 5]), params)
    assert fallback.tolist() == [False, True] and label[10, 10] == 5 and label[7, 10] == 3   # ring on a larger mask
    with pytest.raises(ConfigError, match="uncertain_low"):
        PromptParams(threshold=0.8, uncertain_high=0.7)


@pytest.fixture(scope="module")
def isnet_file():
    if not ISNET.is_file():
        pytest.skip(f"{ISNET} is absent (shared development models)")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    return ISNET


def test_isnet_runs_at_any_size_and_equals_the_traced_graph_at_1024(isnet_file):
    import onnxruntime as ort
    from pseudolabel.models.isnet import isnet_batch, load_isnet
    session = load_isnet(str(isnet_file), "cpu")
    crops = [np.random.default_rng(k).integers(0, 255, (40 + k, 50, 3), dtype=np.uint8) for k in range(2)]
    small = isnet_batch(session, crops, 64)
    assert [p.shape for p in small] == [(40, 50), (41, 50)] and all(0 <= p.min() and p.max() <= 1 for p in small)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    traced = ort.InferenceSession(str(isnet_file), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 1024, 1024), dtype=np.float32)
    a = session.run(["output"], {"input": x})[0]
    b = traced.run(["output"], {"input": x})[0]
    assert np.abs(a - b).max() < 1e-4


def test_isnet_weights_missing_is_one_line(invoke, voc_root, tmp_path):
    result = invoke("prompt", "--data-root", voc_root, "--weights", tmp_path / "isnet-general-use.onnx")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "IS-Net weights not found" in result.output and "isnet-general-use.onnx" in result.output


def test_isnet_downstream_grabcut_init_refine_and_fuse(isnet_file, invoke, voc_root, tmp_path):
    common = ["--data-root", voc_root, "--cache", tmp_path / "c"]
    assert invoke("prompt", *common, "--weights", isnet_file, "--input-size", "64", "--batch-boxes", "3").exit_code == 0
    for args in (["grabcut", "--init-from", "prompt", "--iterations", "1"], ["proposals"], ["refine", "--source",
                 "prompt"], ["fuse", "--sources", "prompt,grabcut"]):
        result = invoke(*args, *common)
        assert result.exit_code == 0, (args, result.output)
    train = tmp_path / "c" / "VOC2012" / "train"
    grabcut = LabelStore(train / "grabcut.h5")
    assert grabcut.config["init_from"] == "prompt" and json.loads(grabcut.meta["inputs"])["prompt"]
    plain = LabelStore(run("grabcut", get_stage("grabcut").config_class(iterations=1), open_dataset(voc_root),
                           "train", tmp_path / "plain", progress=False).store)
    assert any(not np.array_equal(grabcut[i].label, plain[i].label) for i in plain.ids)   # the start matters
    refined = LabelStore(train / "refine.h5")
    assert refined.config["source"] == "prompt" and len(refined) == 6
    assert len(LabelStore(train / "fuse.h5")) == 6


def test_grabcut_from_a_mask_with_and_without_edges():
    """A probability map that marks the object starts GrabCut (and GrabCut+) from it."""
    from pseudolabel.algorithms.grabcut import GrabCutParams, grabcut_object
    rng = np.random.default_rng(0)
    image = np.full((80, 100, 3), 60, np.uint8) + rng.integers(0, 20, (80, 100, 3), dtype=np.uint8)
    image[20:60, 30:70] = (200, 60, 60)
    p = np.zeros((80, 100), np.float32)
    p[22:58, 32:68] = 0.95
    edges = np.zeros((80, 100), np.float32)
    edges[20, 30:70] = edges[59, 30:70] = edges[20:60, 30] = edges[20:60, 69] = 1.0
    for e in (None, edges):
        mask, guards = grabcut_object(image, (25, 15, 75, 65), GrabCutParams(), 0, edges=e, init=p)
        assert not guards and abs(int(mask.sum()) - 1600) < 200 and mask[40, 50]
