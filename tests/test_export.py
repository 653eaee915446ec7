"""Exports read back: COCO JSON through pycocotools, YOLO polygons filled back to pixels."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from scipy import ndimage

from pseudolabel.core.classes import VOC_CLASSES
from pseudolabel.export.coco import object_record, sample_annotations
from pseudolabel.export.yolo import polygons, read_yolo_labels, yolo_lines
from pseudolabel.store import LabelStore
from pseudolabel.store.reader import Sample


def fill(parts, shape) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for xy in parts:
        cv2.fillPoly(out, [np.round(xy).astype(np.int32)], 1)
    return out.astype(bool)


def iou(a, b) -> float:
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture
def grabcut_store(invoke, voc_root, tmp_path):
    """A grabcut store of the synthetic tree, one image of which failed (a broken photo)."""
    (voc_root / "JPEGImages" / "2012_000002.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    env = {"PSEUDOLABEL_DATA": str(voc_root)}
    result = invoke("grabcut", "--split", "train", "--on-error", "skip", env=env)
    assert result.exit_code == 0, result.output
    return LabelStore(tmp_path / "cache" / "VOC2012" / "train" / "grabcut.h5", load_masks=True), env


def test_coco_export_loads_in_pycocotools_and_holds_every_object(invoke, grabcut_store, tmp_path):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    store, env = grabcut_store
    out = tmp_path / "coco"
    result = invoke("export", "--stage", "grabcut", "--split", "train", "--format", "coco", "--out", out, env=env)
    assert result.exit_code == 0, result.output
    assert "1 failed image(s) left out" in result.output
    coco = COCO(str(out / "instances_train.json"))
    objects = sum(len(store[i].classes) for i in store.ids)
    assert len(coco.getAnnIds()) == objects and len(coco.getImgIds()) == len(store) == 5
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(VOC_CLASSES[1:])
    assert coco.getCatIds() == list(range(1, 21))
    data = json.loads((out / "instances_train.json").read_text())
    assert list(data["pseudolabel"]["failed_images"]) == ["2012_000002"]          # listed, not an image
    assert "2012_000002" not in {im["voc_id"] for im in data["images"]}
    for image in coco.loadImgs(coco.getImgIds()):
        s = store[image["voc_id"]]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert [a["category_id"] for a in anns] == s.classes.tolist()
        for k, a in enumerate(anns):
            assert (coco.annToMask(a).astype(bool) == s.masks[k]).all()          # the mask, exactly
            assert a["area"] == s.masks[k].sum() == mask_utils.area(a["segmentation"])
            x0, y0, x1, y1 = s.boxes[k].tolist()
            assert a["bbox"] == [x0, y0, x1 - x0, y1 - y0] and a["iscrowd"] == 0
            assert a["pseudolabel"]["object"] == k and isinstance(a["pseudolabel"]["guards"], list)
            assert a["pseudolabel"]["kept_fraction"] == pytest.approx(float(s.objects["kept_fraction"][k]))


def _sample(masks, classes, boxes, objects=None) -> Sample:
    k = len(classes)
    return Sample("x", "/p/x.jpg", np.zeros(masks.shape[1:], np.uint8), np.asarray(boxes, np.int32),
                  np.asarray(classes, np.uint8), np.zeros(k, bool), np.zeros(k, bool),
                  np.full(21, np.nan, np.float32), masks=masks, objects=objects or {})


def test_an_empty_mask_is_written_with_area_zero_and_flagged():
    from pycocotools import mask as mask_utils
    masks = np.zeros((2, 20, 30), bool)
    masks[0, 5:10, 5:12] = True
    objects = {"status_map": np.array([1, 0], np.uint8), "status_empty": np.array([0, 1], np.uint8),
               "guard_tiny": np.array([0, 1], np.uint8), "final_loss": np.array([0.5, np.nan], np.float32)}
    anns = sample_annotations(_sample(masks, [3, 7], [[5, 5, 12, 10], [20, 2, 25, 8]], objects), 4, 11)
    assert [a["id"] for a in anns] == [11, 12] and {a["image_id"] for a in anns} == {4}
    assert anns[1]["area"] == 0 and anns[1]["pseudolabel"]["empty"] is True
    assert mask_utils.decode(anns[1]["segmentation"]).sum() == 0
    assert anns[0]["pseudolabel"] == {"object": 0, "difficult": False, "truncated": False, "empty": False,
                                      "status": "map", "guards": [], "final_loss": 0.5}
    assert anns[1]["pseudolabel"]["status"] == "empty" and anns[1]["pseudolabel"]["guards"] == ["tiny"]
    assert anns[1]["pseudolabel"]["final_loss"] is None                            # NaN is not JSON
    assert object_record({"loose_status_box": np.array([1])}, 0) == {"loose_status": "box"}


def test_polygons_fill_holes_split_parts_and_drop_specks():
    mask = np.zeros((40, 60), bool)
    mask[5:25, 5:25] = True
    mask[10:15, 10:15] = False                     # a hole
    mask[30:38, 40:55] = True                      # a second part
    mask[2, 50] = True                             # a speck: one pixel, no polygon
    parts, dropped = polygons(mask)
    assert len(parts) == 2 and dropped == 1
    filled = ndimage.binary_fill_holes(mask)
    filled[2, 50] = False
    assert (fill([p - 0.5 for p in parts], mask.shape) == filled).all()      # pixel centres
    lines, empty, small = yolo_lines(np.stack([mask, np.zeros_like(mask)]), np.array([15, 2]))
    assert len(lines) == 2 and empty == [1] and small == 1
    assert all(line.startswith("14 ") for line in lines)                          # person is index 14
    values = np.array([float(v) for line in lines for v in line.split()[1:]])
    assert values.min() > 0 and values.max() < 1


def test_yolo_export_reads_back_to_the_masks(invoke, grabcut_store, tmp_path):
    store, env = grabcut_store
    out = tmp_path / "yolo"
    result = invoke("export", "--stage", "grabcut", "--split", "train", "--format", "yolo", "--out", out, env=env)
    assert result.exit_code == 0, result.output
    yaml = (out / "data.yaml").read_text()
    assert "train: images/train" in yaml and "  14: person" in yaml and "  0: aeroplane" in yaml
    summary = json.loads((out / "pseudolabel_train.json").read_text())
    assert list(summary["failed_images"]) == ["2012_000002"]
    assert not (out / "labels" / "train" / "2012_000002.txt").exists()
    assert sorted(p.stem for p in (out / "labels" / "train").glob("*.txt")) == sorted(store.ids)
    for image_id in store.ids:
        s = store[image_id]
        link = out / "images" / "train" / f"{image_id}.jpg"
        assert link.is_symlink() and link.resolve().samefile(s.image_path)
        h, w = s.label.shape
        lines = read_yolo_labels(out / "labels" / "train" / f"{image_id}.txt", w, h)
        for k, (mask, c) in enumerate(zip(s.masks, s.classes)):
            mine = [xy for ci, xy in lines if ci == c - 1]
            others = [m for m, c2 in zip(s.masks, s.classes) if c2 == c]
            target = np.any([ndimage.binary_fill_holes(m) for m in others], axis=0)
            assert iou(fill(mine, (h, w)), target) > 0.97, (image_id, k)


def test_recipe_export_formats(invoke, voc_root, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[step]]\nstage = "boxes"\n\n[[step]]\nexport = "boxes"\nformat = "coco"\n')
    first = invoke("run", recipe, "--data-root", voc_root, "--split", "train")
    assert first.exit_code == 0, first.output
    path = tmp_path / "cache" / "VOC2012" / "train" / "export" / "boxes-coco" / "instances_train.json"
    assert len(json.loads(path.read_text())["images"]) == 6
    assert "export boxes (coco): nothing to do" in invoke("run", recipe, "--data-root", voc_root,
                                                          "--split", "train").output
    recipe.write_text('[[step]]\nstage = "boxes"\n\n[[step]]\nexport = "boxes"\nformat = "jpeg"\n')
    bad = invoke("run", recipe, "--data-root", voc_root, "--split", "train")
    assert bad.exit_code != 0 and "format must be one of png, coco, yolo, got 'jpeg'" in bad.output


@pytest.mark.parametrize("fmt", ["png", "coco", "yolo"])
def test_an_output_folder_that_cannot_be_made_is_one_line(invoke, voc_root, tmp_path, fmt):
    env = {"PSEUDOLABEL_DATA": str(voc_root)}
    assert invoke("boxes", "--split", "train", env=env).exit_code == 0
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = invoke("export", "--stage", "boxes", "--split", "train", "--format", fmt, "--out", blocker / "out",
                    env=env)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "a-file/out" in result.output and "Not a directory" in result.output
