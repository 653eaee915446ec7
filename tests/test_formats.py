"""Any box dataset in (issue 25): COCO instances JSON and YOLO labels as data roots, with their own
classes; the same photos in the three layouts give the same boxes and labels; exports round-trip."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pseudolabel.catalog import open_dataset
from pseudolabel.core.classes import VOC_CLASSES, LabelSpace
from pseudolabel.core.errors import LayoutError
from pseudolabel.core.records import BadRecord
from pseudolabel.runner import RunOptions, run
from pseudolabel.stages import get_stage
from pseudolabel.store import LabelStore

from .conftest import shared
from .formats import coco_copy, yolo_copy


def _three(voc_root, tmp_path, ids):
    voc = open_dataset(voc_root)
    coco = open_dataset(coco_copy(voc_root, tmp_path / "coco", ids))
    yolo = open_dataset(yolo_copy(voc_root, tmp_path / "yolo", ids))
    return voc, coco, yolo


def _same_labels(voc_root, tmp_path, ids, stage="grabcut", values=None):
    voc, coco, yolo = _three(voc_root, tmp_path, ids)
    assert (voc.kind, coco.kind, yolo.kind) == ("voc", "coco", "yolo")
    config = get_stage(stage).config_class(**(values or {}))
    stores = {}
    for name, ds in (("voc", voc), ("coco", coco), ("yolo", yolo)):
        split = "train"
        records = {r.image_id: r for r in ds.records(split) if r.image_id in ids}
        assert sorted(records) == sorted(ids)
        stores[name] = (ds, records, LabelStore(run(stage, config, ds, split, tmp_path / f"c-{name}",
                                                    RunOptions(jobs=1), progress=False).store, load_masks=True))
    base_ds, base_records, base = stores["voc"]
    for name in ("coco", "yolo"):
        ds, records, store = stores[name]
        to_other = np.zeros(256, np.uint8)                     # VOC class -> this layout's class, by name
        to_other[255] = 255
        for c in range(1, 21):
            to_other[c] = ds.labels.names.index(VOC_CLASSES[c])
        assert store.labels == ds.labels and store.labels.num_classes == 21
        for image_id in ids:
            a, b = base[image_id], store[image_id]
            assert np.array_equal(a.boxes, b.boxes), (name, image_id)               # the same boxes
            assert np.array_equal(to_other[a.classes], b.classes)
            assert np.array_equal(a.masks, b.masks), (name, image_id)               # bit for bit
            assert np.array_equal(to_other[a.label], b.label), (name, image_id)
    return stores


def test_the_same_photos_in_three_layouts_give_the_same_boxes_and_labels(voc_root, tmp_path):
    ids = [r.image_id for r in open_dataset(voc_root).records("train")]
    _same_labels(voc_root, tmp_path, ids, values={"iterations": 1})


def test_the_dev_photos_in_three_layouts_give_the_same_grabcut_labels(tmp_path):
    dev = shared("coco128-voc-dev")
    ids = (dev / "ImageSets" / "Segmentation" / "train.txt").read_text().split()[:5]
    stores = _same_labels(dev, tmp_path, ids)
    ds, _, store = stores["coco"]
    assert ds.labels.source_ids[ds.labels.names.index("person") - 1] == 1       # COCO's own category ids
    assert int(store.image_attr(ids[0], "source_id")) == int(ids[0])           # and image ids


def test_evaluate_on_coco_input_scores_against_the_files_masks_and_says_so(invoke, voc_root, tmp_path):
    ids = [r.image_id for r in open_dataset(voc_root).records("train")]
    root = coco_copy(voc_root, tmp_path / "coco", ids)
    assert invoke("boxes", "--data-root", root, "--cache", tmp_path / "c").exit_code == 0
    table = invoke("-q", "evaluate", "--data-root", root, "--cache", tmp_path / "c").output
    assert "mark no void band" in table
    report = json.loads(invoke("-q", "evaluate", "--data-root", root, "--cache", tmp_path / "c", "--json",
                               "--instances").output)
    assert "no void band" in report["ground_truth"] and report["unscored_images"] == 0
    assert set(report["per_class"]) == set(open_dataset(root).labels.names)
    assert report["instances"]["class_mismatches"] == 0 and report["instances"]["instances"] > 0
    # the file's own masks as the pseudo masks would score 100: boxes score below
    assert report["instances"]["miou"] < 100


def test_coco_in_coco_out_keeps_ids_and_order_one_mask_per_annotation(invoke, voc_root, tmp_path):
    from pycocotools.coco import COCO
    ids = [r.image_id for r in open_dataset(voc_root).records("train")]
    root = coco_copy(voc_root, tmp_path / "coco", ids)
    source = json.loads((root / "annotations" / "instances_train.json").read_text())
    source["annotations"].append({"id": 9, "image_id": source["images"][0]["id"], "category_id":
                                  source["categories"][0]["id"], "bbox": [1, 1, 10, 10], "iscrowd": 1,
                                  "segmentation": {"size": [96, 128], "counts": [0, 96 * 128]}, "area": 1})
    source["info"] = {"description": "mine"}
    (root / "annotations" / "instances_train.json").write_text(json.dumps(source))
    common = ["--data-root", root, "--cache", tmp_path / "c"]
    assert invoke("grabcut", *common, "--iterations", "1").exit_code == 0
    out = tmp_path / "out"
    assert invoke("export", *common, "--stage", "grabcut", "--format", "coco", "--out", out).exit_code == 0
    data = json.loads((out / "instances_train.json").read_text())
    assert [a["id"] for a in data["annotations"]] == [a["id"] for a in source["annotations"]]
    assert [a["image_id"] for a in data["annotations"]] == [a["image_id"] for a in source["annotations"]]
    assert [im["id"] for im in data["images"]] == [im["id"] for im in source["images"]]
    assert data["categories"] == source["categories"] and data["info"] == {"description": "mine"}
    crowd = data["annotations"][-1]
    assert crowd["iscrowd"] == 1 and crowd["segmentation"] == source["annotations"][-1]["segmentation"]
    coco = COCO(str(out / "instances_train.json"))
    store = LabelStore(tmp_path / "c" / "coco" / "train" / "grabcut.h5", load_masks=True)
    for a in data["annotations"][:-1]:
        image_id = next(i for i in store.ids if int(store.image_attr(i, "source_id")) == a["image_id"])
        s = store[image_id]
        k = list(s.source_ids).index(a["id"])
        assert np.array_equal(coco.annToMask(a).astype(bool), s.masks[k])
    label = store[ids[0]].label
    assert (label[1:11, 1:11] != 0).all() and (label[1:11, 1:11] == 255).any()  # crowd box: background ignored


def test_yolo_in_yolo_seg_out_with_the_same_classes(invoke, voc_root, tmp_path):
    ids = [r.image_id for r in open_dataset(voc_root).records("train")]
    root = yolo_copy(voc_root, tmp_path / "yolo", ids)
    common = ["--data-root", root, "--cache", tmp_path / "c"]
    assert invoke("boxes", *common).exit_code == 0
    out = tmp_path / "yolo-seg"                                   # beside the input
    assert invoke("export", *common, "--format", "yolo", "--out", out).exit_code == 0
    import yaml
    assert yaml.safe_load((out / "data.yaml").read_text())["names"] == yaml.safe_load(
        (root / "data.yaml").read_text())["names"]
    for image_id in ids:
        given = [int(line.split()[0]) for line in (root / "labels" / "train" / f"{image_id}.txt").read_text().split("\n")
                 if line]
        made = [int(line.split()[0]) for line in (out / "labels" / "train" / f"{image_id}.txt").read_text().split("\n")
                if line]
        assert made == given
    seg = open_dataset(out)                                        # and the export reads back as a dataset
    assert seg.kind == "yolo" and seg.labels == open_dataset(root).labels
    assert [len(r.objects) for r in seg.records("train")] == [len(r.objects) for r in open_dataset(root).records("train")]


def test_iscrowd_boxes_are_ignore_regions_and_images_without_annotations_are_kept(voc_root, tmp_path):
    ids = [r.image_id for r in open_dataset(voc_root).records("train")]
    root = coco_copy(voc_root, tmp_path / "coco", ids)
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    first, empty = data["images"][0]["id"], data["images"][1]["id"]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != empty]
    data["annotations"].append({"id": 1, "image_id": first, "category_id": data["categories"][0]["id"],
                                "bbox": [100.4, 70.2, 20.0, 20.5], "iscrowd": 1, "area": 400,
                                "segmentation": [[100, 70, 120, 70, 120, 90, 100, 90]]})
    path.write_text(json.dumps(data))
    ds = open_dataset(root)
    records = {r.image_id: r for r in ds.records("train")}
    assert records[ids[1]].objects == () and records[ids[0]].ignore_boxes == ((100, 70, 121, 91),)
    store = LabelStore(run("boxes", None, ds, "train", tmp_path / "c", progress=False).store)
    assert not store[ids[1]].label.any()                                      # all background
    crowd = store[ids[0]].label[70:91, 100:121]
    assert set(np.unique(crowd)) <= {255} | set(range(1, 21)) and (crowd == 255).any()
    gt = ds.class_gt(records[ids[0]])
    assert (gt[72:88, 102:118] == 255).all() and (gt != 255).mean() > 0.9       # the crowd mask is void


def test_a_label_space_of_up_to_254_classes_and_pngs_for_any_count(invoke, voc_root, tmp_path):
    ids = [r.image_id for r in open_dataset(voc_root).records("train")]
    root = coco_copy(voc_root, tmp_path / "coco", ids)
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    data["categories"] += [{"id": 500 + i, "name": f"extra{i}"} for i in range(60)]
    path.write_text(json.dumps(data))
    assert open_dataset(root).labels.num_classes == 81
    assert invoke("boxes", "--data-root", root, "--cache", tmp_path / "c").exit_code == 0
    assert invoke("export", "--data-root", root, "--cache", tmp_path / "c", "--out", tmp_path / "png").exit_code == 0
    png = Image.open(tmp_path / "png" / "SegmentationClass" / f"{ids[0]}.png")
    store = LabelStore(tmp_path / "c" / "coco" / "train" / "boxes.h5")
    assert png.mode == "P" and np.array_equal(np.asarray(png), store[ids[0]].label)
    assert len(store[ids[0]].filling_rate) == 81
    data["categories"] += [{"id": 1000 + i, "name": f"more{i}"} for i in range(200)]
    path.write_text(json.dumps(data))
    with pytest.raises(LayoutError, match="280 classes: a label map holds at most 254"):
        open_dataset(root)


def test_bbam_refuses_classes_that_are_not_vocs(invoke, voc_root, tmp_path):
    ids = [r.image_id for r in open_dataset(voc_root).records("train")]
    root = coco_copy(voc_root, tmp_path / "coco", ids)
    result = invoke("bbam", "--data-root", root, "--cache", tmp_path / "c", "--weights", "toy")
    assert result.exit_code == 1 and "bbam explains a detector of PASCAL VOC's 20 classes" in result.output


def test_stores_record_their_classes_and_older_stores_read_as_voc(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    store = LabelStore(run("boxes", None, ds, "train", tmp_path, progress=False).store)
    assert store.labels.is_voc and json.loads(store.meta["class_names"]) == list(VOC_CLASSES)
    assert LabelSpace.from_attrs({}).is_voc


# -- bad input, named --------------------------------------------------------------------------
@pytest.mark.parametrize("content, message", [
    ("[1, 2, 3]", "not a COCO instances file"),
    ('{"images": [], "categories": []', "not a readable JSON file"),
    ('{"images": [], "annotations": [], "categories": []}', "no categories"),
    ('{"images": [], "annotations": [], "categories": [{"id": "x", "name": "a"}]}', "integer 'id'"),
])
def test_a_json_that_is_not_coco_is_named(tmp_path, content, message):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text(content)
    with pytest.raises(LayoutError, match=message):
        open_dataset(tmp_path).records("train")


def _coco(tmp_path, annotation: dict) -> dict:
    (tmp_path / "annotations").mkdir(exist_ok=True)
    (tmp_path / "train").mkdir(exist_ok=True)
    Image.new("RGB", (40, 30)).save(tmp_path / "train" / "a.jpg")
    data = {"images": [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 30}],
            "annotations": [{"id": 3, "image_id": 7, "category_id": 1, "bbox": [2, 2, 10, 10], "iscrowd": 0,
                             **annotation}],
            "categories": [{"id": 1, "name": "thing"}]}
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps(data))
    return data


@pytest.mark.parametrize("annotation, message", [
    ({"bbox": [35, 2, 10, 10]}, "annotation 3 (image 7): bbox [35, 2, 10, 10] lies outside the 40x30 image"),
    ({"category_id": 5}, "annotation 3 (image 7) has category id 5, which is not in 'categories'"),
    ({"bbox": [2, 2, 0, 10]}, "has no area"),
    ({"bbox": [2, 2, "x", 10]}, "bbox must be four finite numbers"),
])
def test_bad_coco_annotations_are_named(invoke, tmp_path, annotation, message):
    _coco(tmp_path, annotation)
    (record,) = open_dataset(tmp_path).records("train")
    assert isinstance(record, BadRecord) and message in record.problem
    result = invoke("boxes", "--data-root", tmp_path, "--cache", tmp_path / "c")
    assert result.exit_code == 1 and "instances_train.json: annotation 3" in result.output
    assert "Traceback" not in result.output


def test_coco_boxes_a_hair_outside_the_image_are_clipped(tmp_path):
    _coco(tmp_path, {"bbox": [30.2, 20.5, 10.3, 9.9]})
    (record,) = open_dataset(tmp_path).records("train")
    assert record.objects[0].box == (30, 20, 40, 30)


def _yolo(tmp_path, line: str, names="names: [cat, dog]\n"):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(tmp_path / "images" / "train" / "a.jpg")
    (tmp_path / "labels" / "train" / "a.txt").write_text(line + "\n")
    (tmp_path / "data.yaml").write_text(names)


@pytest.mark.parametrize("line, message", [
    ("0 0.5 0.5 0.2", "line 1: 4 numbers; expected 5 (class cx cy w h) or a polygon"),
    ("0 0.5 1.5 0.2 0.2", "line 1: values outside [0, 1]"),
    ("2 0.5 0.5 0.2 0.2", "line 1: class 2 is not one of the 2 in names"),
    ("0 0.5 0.5 0.2 x", "line 1: not numbers"),
])
def test_bad_yolo_lines_are_named(invoke, tmp_path, line, message):
    _yolo(tmp_path, line)
    (record,) = open_dataset(tmp_path).records("train")
    assert isinstance(record, BadRecord) and message in record.problem and record.path.endswith("a.txt")
    result = invoke("boxes", "--data-root", tmp_path, "--cache", tmp_path / "c")
    assert result.exit_code == 1 and f"a.txt: {message}" in result.output


def test_a_yolo_dataset_without_names_is_named(tmp_path):
    _yolo(tmp_path, "0 0.5 0.5 0.2 0.2", names="path: .\ntrain: images/train\n")
    with pytest.raises(LayoutError, match="data.yaml: no 'names'"):
        open_dataset(tmp_path)


def test_yolo_boxes_and_polygons(tmp_path):
    _yolo(tmp_path, "1 0.5 0.5 0.5 0.5\n0 0.1 0.1 0.3 0.1 0.3 0.5")
    (record,) = open_dataset(tmp_path).records("train")
    assert [o.class_id for o in record.objects] == [2, 1]
    assert record.objects[0].box == (10, 8, 30, 22) and record.objects[1].box == (3, 2, 12, 15)
