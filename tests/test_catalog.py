from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pseudolabel.catalog import load_class_gt, load_image, load_object_gt, open_dataset, parse_voc_xml
from pseudolabel.core.classes import CLASS_ID, VOC_CLASSES, voc_palette
from pseudolabel.core.errors import DataError, LayoutError
from pseudolabel.core.records import BadRecord, ImageRecord

from .conftest import shared


def test_voc_layout_splits_and_box_convention(voc_root):
    ds = open_dataset(voc_root)
    assert ds.kind == "voc" and ds.splits() == ["train", "trainval", "val"]
    recs = ds.records("train")
    assert [r.image_id for r in recs] == [f"2012_{i:06d}" for i in range(6)]
    r = recs[0]
    # the XML stores 1-based inclusive corners; records hold 0-based half-open ones
    xml = (voc_root / "Annotations" / f"{r.image_id}.xml").read_text()
    x0, y0, x1, y1 = r.objects[0].box
    assert f"<xmin>{x0 + 1}</xmin>" in xml and f"<xmax>{x1}</xmax>" in xml
    assert f"<ymin>{y0 + 1}</ymin>" in xml and f"<ymax>{y1}</ymax>" in xml
    # the synthetic objects are ellipses inscribed in their boxes; the GT PNG has a 1-px void
    # band on the ellipse's edge, so the labelled pixels sit exactly one pixel inside the box
    obj = load_object_gt(r)
    ys, xs = np.nonzero(obj == 1)
    assert (xs.min() - 1, ys.min() - 1, xs.max() + 2, ys.max() + 2) == r.objects[0].box


def test_flags_are_kept(voc_root):
    recs = open_dataset(voc_root).records("trainval")
    multi = next(r for r in recs if len(r.objects) == 3)
    assert multi.flags("difficult").tolist() == [False, True, False]
    assert multi.flags("truncated").tolist() == [False, False, True]


def test_records_are_immutable(voc_root):
    r = open_dataset(voc_root).records("train")[0]
    with pytest.raises(AttributeError):
        r.image_id = "x"
    with pytest.raises(AttributeError):
        r.objects[0].box = (0, 0, 1, 1)
    assert isinstance(r.image_id, str)


def test_image_and_gt_loading(voc_root):
    r = open_dataset(voc_root).records("train")[1]
    image = load_image(r)
    assert image.shape == (r.height, r.width, 3) and image.dtype == np.uint8
    gt = load_class_gt(r)
    assert gt.shape == (r.height, r.width) and 255 in gt
    assert set(np.unique(gt)) <= set(range(21)) | {255}


def test_grey_jpeg_becomes_three_channels(voc_root):
    r = open_dataset(voc_root).records("train")[0]
    Image.fromarray(np.full((r.height, r.width), 77, np.uint8)).save(r.image_path)
    image = load_image(r)
    assert image.shape == (r.height, r.width, 3)
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()


def test_unknown_split_lists_known_ones(voc_root):
    with pytest.raises(LayoutError, match="unknown split 'tran'.*train, trainval, val"):
        open_dataset(voc_root).records("tran")


def test_layout_errors(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(LayoutError, match="no dataset found.*JPEGImages"):
        open_dataset(tmp_path)
    with pytest.raises(LayoutError, match="PSEUDOLABEL_DATA"):
        open_dataset(None)


# ------------------------------------------------------------------ bad input: names file + problem
def _xml(voc_root, image_id="2012_000000"):
    return voc_root / "Annotations" / f"{image_id}.xml"


def _bad(voc_root, image_id="2012_000000") -> BadRecord:
    rec = {r.image_id: r for r in open_dataset(voc_root).records("train")}[image_id]
    assert isinstance(rec, BadRecord), rec
    return rec


def test_malformed_xml(voc_root):
    _xml(voc_root).write_text("<annotation><size><width>12</width>")
    rec = _bad(voc_root)
    assert rec.path == str(_xml(voc_root)) and "malformed XML" in rec.problem


def test_missing_size_field(voc_root):
    p = _xml(voc_root)
    p.write_text(p.read_text().replace("<height>96</height>", ""))
    assert "missing <height>" in _bad(voc_root).problem


def test_unknown_class_name(voc_root):
    p = _xml(voc_root)
    text = p.read_text()
    name = text.split("<name>")[1].split("</name>")[0]
    p.write_text(text.replace(f"<name>{name}</name>", "<name>unicorn</name>", 1))
    rec = _bad(voc_root)
    assert "unknown class name 'unicorn' (object 1)" in rec.problem and rec.path.endswith("2012_000000.xml")


def test_box_outside_image(voc_root):
    p = _xml(voc_root)
    text = p.read_text()
    xmax = text.split("<xmax>")[1].split("</xmax>")[0]
    p.write_text(text.replace(f"<xmax>{xmax}</xmax>", "<xmax>129</xmax>", 1))
    assert "lies outside the 128x96 image" in _bad(voc_root).problem


def test_box_of_zero_area(voc_root):
    p = _xml(voc_root)
    text = p.read_text()
    xmin = text.split("<xmin>")[1].split("</xmin>")[0]
    xmax = text.split("<xmax>")[1].split("</xmax>")[0]
    p.write_text(text.replace(f"<xmax>{xmax}</xmax>", f"<xmax>{xmin}</xmax>", 1))
    assert "has zero area" in _bad(voc_root).problem


def test_missing_annotation(voc_root):
    _xml(voc_root).unlink()
    assert "annotation file is missing" in _bad(voc_root).problem


def _rec(voc_root, i=0) -> ImageRecord:
    return open_dataset(voc_root).records("train")[i]


def test_missing_image(voc_root):
    r = _rec(voc_root)
    (voc_root / "JPEGImages" / f"{r.image_id}.jpg").unlink()
    with pytest.raises(DataError, match="image file is missing") as err:
        load_image(r)
    assert err.value.path == r.image_path


def test_truncated_jpeg(voc_root):
    r = _rec(voc_root)
    data = open(r.image_path, "rb").read()
    open(r.image_path, "wb").write(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot decode image") as err:
        load_image(r)
    assert r.image_path in str(err.value)


def test_not_an_image(voc_root):
    r = _rec(voc_root)
    open(r.image_path, "wb").write(b"this is not a jpeg")
    with pytest.raises(DataError, match=r"2012_000000\.jpg: cannot decode image"):
        load_image(r)


def test_size_disagrees_with_xml(voc_root):
    r = _rec(voc_root)
    Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(r.image_path)
    with pytest.raises(DataError, match=r"image is 60x50 but its annotation .*2012_000000\.xml\) says 128x96"):
        load_image(r)


def test_parse_voc_xml_reads_float_corners(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text("<annotation><size><width>10</width><height>8</height></size><object><name>cat</name>"
                 "<bndbox><xmin>2.0</xmin><ymin>1</ymin><xmax>10</xmax><ymax>8</ymax></bndbox></object></annotation>")
    w, h, objs = parse_voc_xml(p)
    assert (w, h) == (10, 8) and objs[0].box == (1, 0, 10, 8) and objs[0].class_id == CLASS_ID["cat"]


# ------------------------------------------------------------------ SBD and train_aug
def test_sbd_alone(combined_root):
    ds = open_dataset(combined_root / "SBD")
    assert ds.kind == "sbd" and ds.splits() == ["train", "val"]
    r = ds.records("train")[0]
    assert r.image_path.endswith("SBD/img/2012_000000.jpg")
    inst = load_object_gt(r)
    for k, o in enumerate(r.objects, start=1):   # boxes derived from the instance masks
        ys, xs = np.nonzero(inst == k)
        assert o.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert load_class_gt(r).shape == (r.height, r.width)


def test_train_aug_union_minus_voc_val(combined_root):
    ds = open_dataset(combined_root)
    assert ds.kind == "voc+sbd"
    assert {"train", "val", "sbd_train", "sbd_val", "train_aug"} <= set(ds.splits())
    recs = {r.image_id: r for r in ds.records("train_aug")}
    voc_train = {f"2012_{i:06d}" for i in range(6)}
    expected = (voc_train | {"2008_000001", "2008_000002", "2008_000003"}) - {"2012_000006"}
    assert set(recs) == expected and list(recs) == sorted(expected)
    # VOC annotates 2012_000000: its XML boxes and VOC ground truth are used
    assert recs["2012_000000"].annotation_path.endswith(".xml")
    assert recs["2012_000000"].class_gt_path.endswith("SegmentationClass/2012_000000.png")
    # SBD-only image: boxes and ground truth from SBD
    assert recs["2008_000003"].annotation_path.endswith("inst/2008_000003.mat")
    assert recs["2008_000003"].class_gt_path.endswith("cls/2008_000003.mat")


def test_corrupt_mat_names_file(combined_root):
    (combined_root / "SBD" / "inst" / "2008_000002.mat").write_bytes(b"MATLAB 5.0 garbage")
    recs = {r.image_id: r for r in open_dataset(combined_root).records("sbd_train")}
    bad = recs["2008_000002"]
    assert isinstance(bad, BadRecord) and bad.path.endswith("2008_000002.mat")
    assert "cannot read MATLAB file" in bad.problem


# ------------------------------------------------------------------ genuine VOC files
def test_genuine_voc2012_files():
    root = shared("voc2012-mini3")
    ds = open_dataset(root)
    recs = ds.records("trainval")
    assert [r.image_id for r in recs] == ["2011_000003", "2011_000006", "2011_000025"]
    palette = voc_palette().ravel().tolist()
    for r in recs:
        image = load_image(r)
        gt = load_class_gt(r)
        assert image.shape[:2] == gt.shape == (r.height, r.width)
        assert 255 in gt                                   # the void band is read as 255
        assert set(np.unique(gt)) <= set(range(21)) | {255}
        assert Image.open(r.class_gt_path).getpalette() == palette
    first = recs[0]
    assert (first.width, first.height) == (500, 338)
    assert [VOC_CLASSES[o.class_id] for o in first.objects] == ["person", "person", "bottle"]
    assert first.objects[0].box == (191, 107, 314, 328)
