"""Property-based tests: the catalog's readers fed malformed XML, .mat files and images.

Every case must end in EITHER a valid result (right types, shapes and invariants: boxes
0-based half-open, inside the image, of positive area; images (H, W, 3) uint8; ...) OR a
:class:`DataError` naming the file and a non-empty problem -- never any other exception.

Runs are derandomized (the examples depend only on the test's source), so they cannot flake.
Known bugs are pinned by separate ``xfail(strict=True)`` tests so the suite stays green until
the fix lands; the general properties exclude exactly those inputs.
"""
from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, event, given, settings
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st
from PIL import Image
from scipy.io import savemat

from pseudolabel.catalog import (
    load_class_gt,
    load_image,
    load_object_gt,
    open_dataset,
    parse_voc_xml,
    read_mcg_proposals,
    read_sbd_instances,
)
from pseudolabel.core.classes import NUM_CLASSES, VOC_CLASSES
from pseudolabel.core.errors import DataError, LayoutError
from pseudolabel.core.records import BadRecord, ImageRecord, ObjectRecord
from pseudolabel.catalog.vocwrite import voc_xml, write_split

from .synth import make_sbd_tree, make_voc_tree


def fuzz(max_examples: int):
    """Deterministic, no example database, no per-example deadline (CI machines are slow)."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    report_multiple_bugs=False,  # one exception, so xfail(raises=...) matches
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def pinned(max_examples: int):
    """For the xfail tests pinning a known bug: no shrinking, so the expected failure is cheap."""
    return settings(fuzz(max_examples), phases=(Phase.explicit, Phase.generate))


def _outcome(name: str) -> None:
    if currently_in_test_context():  # shown by --hypothesis-show-statistics
        event(name)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def expect_ok_or_data_error(fn, path):
    """Run ``fn``; return its result, or None after checking the DataError names ``path``.
    Any other exception propagates and fails the test. Numeric warnings are not errors."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fn()
        _outcome("valid result")
        return result
    except DataError as err:
        _outcome("DataError")
        assert err.path == str(path), (err.path, str(path))
        assert isinstance(err.problem, str) and err.problem.strip(), "empty problem"
        assert str(err) == f"{path}: {err.problem}"
        return None


# ====================================================================== VOC XML
SAFE_CHARS = st.characters(blacklist_categories=("Cs",))  # no lone surrogates (unwritable)


NUMBER_TEXT = st.one_of(
    st.integers(-5, 700).map(str),
    st.integers(-10**40, 10**40).map(str),                       # huge and negative
    st.floats(allow_nan=False, allow_infinity=False).map(repr),  # '1.5', '-0.0', '1e+300'
    st.sampled_from(["", "  ", "abc", "12px", "0x10", "1,5", "--1", "1e5", " 7 ", "3.0", "1_0"]),
    st.sampled_from(["inf", "-inf", "nan", "1e400"]),             # non-finite
    st.text(SAFE_CHARS, max_size=6),
)
CLASS_NAMES = st.one_of(st.sampled_from(VOC_CLASSES), st.sampled_from(["Cat", " dog ", "unicorn", ""]),
                        st.text(SAFE_CHARS, max_size=8))


def _tag(tag: str, text: str | None) -> str:
    return "" if text is None else f"<{tag}>{escape(text)}</{tag}>"


@st.composite
def valid_corners(draw, width: int, height: int):
    x0 = draw(st.integers(1, width - 1))
    y0 = draw(st.integers(1, height - 1))
    return (x0, y0, draw(st.integers(x0 + 1, width)), draw(st.integers(y0 + 1, height)))


@st.composite
def annotation_texts(draw) -> str:
    """A VOC-shaped annotation whose fields are plausible, odd, missing or garbage."""
    width = draw(st.integers(2, 600))
    height = draw(st.integers(2, 600))
    size = ""
    if draw(st.integers(0, 9)):  # usually present
        w = draw(st.one_of(st.just(str(width)), st.none(), NUMBER_TEXT))
        h = draw(st.one_of(st.just(str(height)), st.none(), NUMBER_TEXT))
        size = f"<size>{_tag('width', w)}{_tag('height', h)}<depth>3</depth></size>"
    objects = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.one_of(st.none(), CLASS_NAMES))
        box = ""
        if draw(st.integers(0, 7)):
            corners = [str(c) for c in draw(valid_corners(width, height))]
            for i in draw(st.lists(st.integers(0, 3), max_size=2, unique=True)):
                corners[i] = draw(st.one_of(st.none(), NUMBER_TEXT))
            box = "<bndbox>" + "".join(_tag(t, c) for t, c in zip(("xmin", "ymin", "xmax", "ymax"), corners)) + "</bndbox>"
        flags = _tag("difficult", draw(st.sampled_from([None, "0", "1", "true", "x"])))
        objects.append(f"<object>{_tag('name', name)}{flags}{box}</object>")
    return f"<annotation><filename>a.jpg</filename>{size}{''.join(objects)}</annotation>"


def check_annotation(result) -> None:
    width, height, objects = result
    assert type(width) is int and type(height) is int and width > 0 and height > 0
    assert isinstance(objects, tuple)
    for o in objects:
        assert isinstance(o, ObjectRecord) and type(o.class_id) is int and 1 <= o.class_id < NUM_CLASSES
        assert all(type(c) is int for c in o.box)
        x0, y0, x1, y1 = o.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (o.box, width, height)
        assert o.area > 0 and isinstance(o.difficult, bool) and isinstance(o.truncated, bool)


def parse_checked(path: Path):
    result = expect_ok_or_data_error(lambda: parse_voc_xml(path), path)
    if result is not None:
        check_annotation(result)
    return result


@fuzz(150)
@given(text=annotation_texts())
def test_xml_with_odd_fields(work, text):
    path = work / "odd fields.xml"
    path.write_text(text, encoding="utf-8")
    parse_checked(path)


def _round_trip(work, width, height, boxes):
    objects = tuple(ObjectRecord(c, (x0, y0, x1, y1), difficult=d, truncated=t)
                    for x0, y0, x1, y1, c, d, t in boxes)
    path = work / "round trip.xml"
    path.write_text(voc_xml("a", width, height, objects))
    result = parse_checked(path)
    assert result == (width, height, objects)


@st.composite
def box_lists(draw, width, height, min_side):
    """In-image boxes in the package convention, sides >= min_side, with class and flags."""
    boxes = []
    for _ in range(draw(st.integers(0, 4))):
        x0, y0 = draw(st.integers(0, width - min_side)), draw(st.integers(0, height - min_side))
        x1, y1 = draw(st.integers(x0 + min_side, width)), draw(st.integers(y0 + min_side, height))
        boxes.append((x0, y0, x1, y1, draw(st.integers(1, NUM_CLASSES - 1)), draw(st.booleans()), draw(st.booleans())))
    return boxes


@fuzz(60)
@given(width=st.integers(2, 5000), height=st.integers(2, 5000), data=st.data())
def test_xml_valid_annotation_round_trips(work, width, height, data):
    """vocwrite.voc_xml then parse_voc_xml gives back every in-image box (sides >= 2 px)."""
    _round_trip(work, width, height, data.draw(box_lists(width, height, 2)))


@pinned(10)
@given(width=st.integers(1, 50), height=st.integers(1, 50), data=st.data())
def test_xml_box_with_xmax_equal_xmin_is_refused_as_zero_area(work, width, height, data):
    """Like most VOC tools (width = xmax - xmin), the catalog treats xmax == xmin as a
    degenerate box, though VOC's inclusive corners would make it one pixel wide."""
    x0, y0 = data.draw(st.integers(0, width - 1)), data.draw(st.integers(0, height - 1))
    path = work / "one_pixel.xml"
    path.write_text(voc_xml("one_pixel", width, height, [ObjectRecord(8, (x0, y0, x0 + 1, y0 + 1))]))
    with pytest.raises(DataError, match="has zero area") as err:
        parse_voc_xml(path)
    assert err.value.path == str(path)


@fuzz(80)
@given(text=annotation_texts(), cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=3))
def test_xml_truncated_or_corrupted_bytes(work, text, cut, flips):
    data = bytearray(text.encode("utf-8"))
    data = data[: int(len(data) * cut)]
    for where, value in flips:
        if data:
            data[min(int(where * len(data)), len(data) - 1)] = value
    path = work / "corrupt.xml"
    path.write_bytes(bytes(data))
    parse_checked(path)


@fuzz(80)
@given(data=st.one_of(st.binary(max_size=300),
                      st.binary(max_size=200).map(lambda b: b"<annotation>" + b),
                      st.binary(max_size=200).map(lambda b: b'<?xml version="1.0"?>\n<annotation><size>' + b)))
def test_xml_random_bytes(work, data):
    path = work / "random.xml"
    path.write_bytes(data)
    parse_checked(path)


TAGS = st.sampled_from(["annotation", "size", "width", "height", "depth", "object", "name", "bndbox",
                        "xmin", "ymin", "xmax", "ymax", "difficult", "truncated", "part", "junk"])
SOUP_TEXT = st.one_of(NUMBER_TEXT, CLASS_NAMES)
ELEMENT = st.recursive(
    st.builds(lambda tag, text: f"<{tag}>{escape(text)}</{tag}>", TAGS, SOUP_TEXT),
    lambda kids: st.builds(lambda tag, k: f"<{tag}>{''.join(k)}</{tag}>", TAGS, st.lists(kids, max_size=4)),
    max_leaves=20,
)


@fuzz(120)
@given(root=TAGS, children=st.lists(ELEMENT, max_size=5))
def test_xml_tag_soup(work, root, children):
    path = work / "soup.xml"
    path.write_text(f"<{root}>{''.join(children)}</{root}>", encoding="utf-8")
    parse_checked(path)


def test_xml_missing_file_and_folder(work):
    parse_checked(work / "absent.xml")
    (work / "a folder.xml").mkdir(exist_ok=True)
    assert parse_checked(work / "a folder.xml") is None


# ---- once-found bugs in parse_voc_xml, kept as regression tests
@pinned(10)
@given(value=st.sampled_from(["inf", "-inf", "Infinity", "1e400", " INF "]), field=st.sampled_from(["width", "height"]))
def test_xml_non_finite_size_is_a_data_error(work, value, field):
    size = {"width": "10", "height": "10", field: value}
    path = work / "inf size.xml"
    path.write_text(f"<annotation><size><width>{size['width']}</width><height>{size['height']}</height></size></annotation>")
    parse_checked(path)


@pinned(10)
@given(corner=st.integers(0, 3), value=st.sampled_from(["nan", "NaN", "-nan", " nan "]))
def test_xml_nan_box_corner_is_a_data_error(work, corner, value):
    corners = ["1", "1", "5", "5"]
    corners[corner] = value
    box = "".join(f"<{t}>{c}</{t}>" for t, c in zip(("xmin", "ymin", "xmax", "ymax"), corners))
    path = work / "nan box.xml"
    path.write_text(f"<annotation><size><width>10</width><height>10</height></size>"
                    f"<object><name>cat</name><bndbox>{box}</bndbox></object></annotation>")
    parse_checked(path)


@pinned(10)
@given(encoding=st.text(st.sampled_from("abcxyz-"), min_size=4, max_size=10).map(lambda s: "zz" + s))
def test_xml_unknown_encoding_is_a_data_error(work, encoding):
    path = work / "encoding.xml"
    path.write_text(f'<?xml version="1.0" encoding="{encoding}"?><annotation/>')
    parse_checked(path)


# ====================================================================== dataset records
@pytest.fixture(scope="module")
def voc_tree(work) -> Path:
    return make_voc_tree(work / "VOC2012", n_images=2, size=(48, 64))  # train: 2012_000000


def check_records(records) -> None:
    for r in records:
        if isinstance(r, BadRecord):
            assert isinstance(r.path, str) and r.path and isinstance(r.problem, str) and r.problem.strip()
        else:
            assert isinstance(r, ImageRecord)
            check_annotation((r.width, r.height, r.objects))


@fuzz(60)
@given(text=annotation_texts())
def test_bad_annotation_becomes_bad_record(voc_tree, text):
    xml = voc_tree / "Annotations" / "2012_000000.xml"
    xml.write_text(text, encoding="utf-8")
    (record,) = open_dataset(voc_tree).records("train")
    check_records([record])
    if isinstance(record, BadRecord):
        assert record.path == str(xml)


@fuzz(60)
@given(data=st.binary(max_size=120).filter(lambda b: b"\0" not in b))
def test_split_file_junk_gives_records_or_layout_error(voc_tree, data):
    (voc_tree / "ImageSets" / "Segmentation" / "fuzz.txt").write_bytes(data)
    try:
        records = open_dataset(voc_tree).records("fuzz")
    except LayoutError as err:
        assert str(err).strip()
        return
    check_records(records)


@pinned(5)
@given(image_id=st.text(st.sampled_from("ab0\0"), min_size=1, max_size=6).filter(lambda s: "\0" in s))
def test_split_id_with_nul_byte(voc_tree, image_id):
    write_split(voc_tree, "nul", [image_id])
    try:
        check_records(open_dataset(voc_tree).records("nul"))
    except LayoutError:
        pass


# ====================================================================== SBD .mat
INT_DTYPES = st.sampled_from([np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64])


@st.composite
def small_arrays(draw, dtypes=INT_DTYPES, lo=0, hi=25, max_dims=3):
    """Arrays of odd dtypes and shapes (0-3 dims, empty axes included); seeded for speed."""
    shape = tuple(draw(st.lists(st.integers(0, 7), min_size=0, max_size=max_dims)))
    dtype = np.dtype(draw(dtypes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "f":
        return rng.uniform(lo, hi, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    info = np.iinfo(dtype)
    return rng.integers(max(lo, info.min), min(hi, info.max) + 1, shape).astype(dtype)


SEGMENTATIONS = st.one_of(
    small_arrays(),
    small_arrays(max_dims=2, lo=0, hi=3),                         # valid-looking instance maps
    small_arrays(dtypes=st.sampled_from([np.float64, np.bool_]), max_dims=2),
    st.sampled_from(["text", 3]),
    st.just(np.zeros((3, 3), np.uint8) + 255),
)
CATEGORIES = st.one_of(
    small_arrays(lo=-3, hi=25, max_dims=2),
    small_arrays(lo=1, hi=20, max_dims=1),
    small_arrays(dtypes=st.just(np.float64), lo=-2, hi=22, max_dims=2),
    st.integers(-5, 30),
)


@st.composite
def gt_structs(draw):
    """A GTinst-like struct with fields present, missing, renamed or wrong."""
    fields = {}
    if draw(st.booleans()):  # coherent: N categories, instance ids 0..N (and 255), then maybe damaged
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        n = draw(st.integers(0, 5))
        seg = rng.integers(0, n + 1, (draw(st.integers(2, 9)), draw(st.integers(2, 9)))).astype(draw(INT_DTYPES))
        if draw(st.booleans()):
            seg[0, :] = 255 if seg.dtype.itemsize > 1 or seg.dtype.kind == "u" else 0
        fields = {"Segmentation": seg, "Categories": rng.integers(1, 21, (n, 1)).astype(np.uint8)}
        damage = draw(st.sampled_from([None, None, None, "Segmentation", "Categories"]))
        if damage:
            fields[damage] = draw(SEGMENTATIONS if damage == "Segmentation" else CATEGORIES)
        return fields
    seg = draw(SEGMENTATIONS)
    if draw(st.integers(0, 9)):
        fields["Segmentation"] = seg
    if draw(st.integers(0, 5)):
        fields["Categories"] = draw(CATEGORIES)
    if draw(st.booleans()):
        fields["Boundaries"] = np.zeros((2, 1), dtype=object)
    return fields


def check_instances(result) -> None:
    seg, cats = result
    assert isinstance(seg, np.ndarray) and seg.ndim == 2 and seg.size and seg.dtype == np.int64
    assert isinstance(cats, np.ndarray) and cats.ndim == 1 and cats.dtype == np.int64
    assert ((cats >= 1) & (cats < NUM_CLASSES)).all()


@fuzz(120)
@given(variable=st.sampled_from(["GTinst", "GTinst", "GTcls", "gtinst"]), fields=gt_structs(),
       extra=st.booleans())
def test_sbd_inst_mat_variants(work, variable, fields, extra):
    path = work / "inst variants.mat"
    content = {variable: fields}
    if extra:
        content["other"] = np.arange(3)
    savemat(path, content)
    result = expect_ok_or_data_error(lambda: read_sbd_instances(path), path)
    if result is not None:
        check_instances(result)
        seg, cats = result
        assert ((seg >= 0) & ((seg <= cats.size) | (seg == 255))).all()


def _valid_inst_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    savemat(buf, {"GTinst": {"Segmentation": rng.integers(0, 3, (6, 7)).astype(np.uint8),
                             "Boundaries": np.zeros((2, 1), dtype=object),
                             "Categories": rng.integers(1, 21, (2, 1)).astype(np.uint8)}})
    return buf.getvalue()


@fuzz(80)
@given(seed=st.integers(0, 3), cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
       junk=st.binary(max_size=200), kind=st.sampled_from(["truncate", "flip", "junk", "header+junk"]))
def test_sbd_mat_random_and_corrupted_bytes(work, seed, cut, flips, junk, kind):
    data = bytearray(_valid_inst_bytes(seed))
    if kind == "truncate":
        data = data[: int(len(data) * cut)]
    elif kind == "flip":
        for where, value in flips:
            data[min(int(where * len(data)), len(data) - 1)] = value
    elif kind == "junk":
        data = bytearray(junk)
    else:
        data = data[:128] + junk  # a genuine MATLAB 5 header, then garbage
    path = work / "corrupt inst.mat"
    path.write_bytes(bytes(data))
    result = expect_ok_or_data_error(lambda: read_sbd_instances(path), path)
    if result is not None:
        check_instances(result)


@pinned(10)
@given(categories=st.sampled_from(["cat", "dog", {"id": 1}, "cell"]))
def test_sbd_non_numeric_categories_is_a_data_error(work, categories):
    if categories == "cell":
        categories = np.empty((2, 1), dtype=object)
        categories[0, 0], categories[1, 0] = np.array([1, 2]), np.array([3])
    path = work / "cats.mat"
    savemat(path, {"GTinst": {"Segmentation": np.ones((3, 3), np.uint8), "Categories": categories}})
    result = expect_ok_or_data_error(lambda: read_sbd_instances(path), path)
    if result is not None:
        check_instances(result)


@pinned(20)
@given(bad=st.one_of(st.integers(-128, -1), st.integers(3, 254)), void=st.booleans())
def test_sbd_instance_ids_without_category_are_rejected(work, bad, void):
    assume(bad < 0 or void)  # a lone id > N is already caught
    seg = np.array([[0, 1, 2], [bad, 255 if void else 0, 1]], np.int16)
    path = work / "ids.mat"
    savemat(path, {"GTinst": {"Segmentation": seg, "Categories": np.array([[3], [7]], np.uint8)}})
    result = expect_ok_or_data_error(lambda: read_sbd_instances(path), path)
    if result is not None:
        seg, cats = result
        assert ((seg >= 0) & ((seg <= cats.size) | (seg == 255))).all(), np.unique(seg)


@pytest.fixture(scope="module")
def sbd_tree(work) -> Path:
    return make_sbd_tree(work / "SBD", ids_train=["2008_000001"], ids_val=["2008_000002"], size=(20, 24))


@fuzz(60)
@given(fields=gt_structs())
def test_bad_sbd_instances_become_bad_records(sbd_tree, fields):
    inst = sbd_tree / "inst" / "2008_000001.mat"
    savemat(inst, {"GTinst": fields})
    (record,) = open_dataset(sbd_tree).records("train")
    check_records([record])
    if isinstance(record, BadRecord):
        assert record.path == str(inst)
    else:  # boxes are the tight boxes of the instance masks
        obj = expect_ok_or_data_error(lambda: load_object_gt(record), inst)
        if obj is not None:
            assert obj.shape == (record.height, record.width) and obj.dtype == np.uint8


# ---- ground truth (.mat and PNG)
@st.composite
def gt_records(draw, work: Path, suffix: str):
    height, width = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    path = work / f"gt file{suffix}"
    return ImageRecord("gt", str(work / "img.jpg"), width, height, (), annotation_path=str(work / "a.xml"),
                       class_gt_path=str(path), object_gt_path=str(path))


def check_class_gt(labels, record) -> None:
    assert labels.shape == (record.height, record.width) and labels.dtype == np.uint8
    assert ((labels < NUM_CLASSES) | (labels == 255)).all()


@fuzz(80)
@given(data=st.data(), seg=SEGMENTATIONS, variable=st.sampled_from(["GTcls", "GTcls", "GTcls", "GTinst"]),
       fit=st.sampled_from([True, True, False]))
def test_class_gt_mat_variants(work, data, seg, variable, fit):
    record = data.draw(gt_records(work, ".mat"))
    if fit and record.height > 1 and record.width > 1:  # fits the record
        lo, hi = data.draw(st.sampled_from([(0, 21), (0, 21), (0, 3), (250, 256), (-2, 30)]))
        seg = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(
            lo, hi, (record.height, record.width)).astype(data.draw(INT_DTYPES if lo >= 0 else st.just(np.int16)))
    savemat(record.class_gt_path, {variable: {"Segmentation": seg, "CategoriesPresent": np.array([1])}})
    labels = expect_ok_or_data_error(lambda: load_class_gt(record), record.class_gt_path)
    if labels is not None:
        check_class_gt(labels, record)


def _png_bytes(array: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(array).convert(mode) if mode != "P" else Image.fromarray(array, mode="P")
    if mode == "P":
        img.putpalette(list(range(256)) * 3)
    img.save(buf, format="PNG")
    return buf.getvalue()


@fuzz(100)
@given(data=st.data(), mode=st.sampled_from(["P", "P", "L", "L", "RGB", "RGBA", "I;16", "1", "LA"]),
       values=st.sampled_from([(0, 21), (0, 21), (0, 256), (250, 256)]), seed=st.integers(0, 2**32 - 1),
       damage=st.sampled_from(["none", "none", "none", "truncate", "flip", "junk"]), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=4),
       junk=st.binary(max_size=100), wrong_size=st.sampled_from([False, False, False, True]))
def test_gt_png_variants(work, data, mode, values, seed, damage, cut, flips, junk, wrong_size):
    record = data.draw(gt_records(work, ".png"))
    h, w = (record.height + 1, record.width) if wrong_size else (record.height, record.width)
    array = np.random.default_rng(seed).integers(*values, (h, w)).astype(np.uint8)
    png = bytearray(_png_bytes(array, mode))
    if damage == "truncate":
        png = png[: int(len(png) * cut)]
    elif damage == "flip":
        for where, value in flips:
            png[min(8 + int(where * (len(png) - 8)), len(png) - 1)] = value  # keep the signature
    elif damage == "junk":
        png = png[:8] + junk
    Path(record.class_gt_path).write_bytes(bytes(png))
    labels = expect_ok_or_data_error(lambda: load_class_gt(record), record.class_gt_path)
    if labels is not None:
        check_class_gt(labels, record)
        if damage == "none" and mode in ("P", "L"):
            assert (labels == array).all()
    inst = expect_ok_or_data_error(lambda: load_object_gt(record), record.object_gt_path)
    if inst is not None:
        assert inst.shape == (record.height, record.width) and inst.dtype == np.uint8


def _claims_huge_size(data: bytes) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)):
                return False
    except Image.DecompressionBombError:
        return True
    except Exception:
        return False


def _png_claiming_size(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", b"\0\0\0") + chunk(b"IEND", b""))


@pinned(10)
@given(side=st.integers(14000, 60000), reader=st.sampled_from([load_class_gt, load_object_gt]))
def test_gt_png_claiming_huge_size_is_a_data_error(work, side, reader):
    path = work / "bomb.png"
    path.write_bytes(_png_claiming_size(side, side))
    record = ImageRecord("b", str(work / "b.jpg"), 4, 4, (), class_gt_path=str(path), object_gt_path=str(path))
    expect_ok_or_data_error(lambda: reader(record), path)


# ====================================================================== MCG proposals
def _cells(vectors) -> np.ndarray:
    cell = np.empty((len(vectors), 1), dtype=object)
    for i, v in enumerate(vectors):
        cell[i, 0] = v
    return cell


ID_VECTORS = st.one_of(
    small_arrays(dtypes=st.sampled_from([np.uint32, np.uint16, np.int32, np.float64]), lo=0, hi=12, max_dims=2),
    small_arrays(dtypes=st.sampled_from([np.int8, np.int64]), lo=-3, hi=12, max_dims=1),
    st.just(np.zeros((0, 1))),
)
LABELS = st.one_of(
    st.lists(ID_VECTORS, max_size=5).map(_cells),       # the official cell array
    ID_VECTORS,                                          # one proposal, squeezed
    st.integers(-2, 12),
    st.sampled_from(["text", {"a": 1}]),
    st.lists(st.lists(ID_VECTORS, max_size=2).map(_cells), min_size=1, max_size=2).map(_cells),  # nested
)
SUPERPIXELS = st.one_of(
    small_arrays(dtypes=st.sampled_from([np.uint16, np.uint32, np.int32, np.uint8]), lo=1, hi=9, max_dims=2),
    small_arrays(lo=0, hi=9),
    small_arrays(dtypes=st.sampled_from([np.float64, np.bool_]), lo=1, hi=9, max_dims=2),
    small_arrays(dtypes=st.sampled_from([np.int64, np.int32]), lo=-3, hi=2**31 - 1, max_dims=2),
    st.sampled_from(["text", 4]),
)


@fuzz(150)
@given(sp=SUPERPIXELS, labels=LABELS, drop=st.sampled_from([None, None, None, "superpixels", "labels"]),
       use_shape=st.booleans(), extra=st.booleans(),
       coherent=st.one_of(st.none(), st.tuples(st.integers(0, 2**32 - 1), st.sampled_from([None, None, "superpixels", "labels"]))))
def test_mcg_variants(work, sp, labels, drop, use_shape, extra, coherent):
    if coherent is not None:  # a well-formed file, keeping at most one of the odd variables
        seed, keep = coherent
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 9))
        good_sp = rng.integers(1, n + 1, (int(rng.integers(2, 8)), int(rng.integers(2, 8)))).astype(np.uint32)
        good_labels = _cells([rng.integers(1, n + 1, (int(rng.integers(0, 4)), 1)).astype(np.float64)
                              for _ in range(int(rng.integers(1, 5)))])
        sp = sp if keep == "superpixels" else good_sp
        labels = labels if keep == "labels" else good_labels
    content = {"superpixels": sp, "labels": labels}
    if drop:
        del content[drop]
    if extra:
        content["scores"] = np.linspace(1, 0, 3).reshape(-1, 1)
    path = work / "mcg variants.mat"
    savemat(path, content)
    shape = np.shape(sp) if use_shape else None
    result = expect_ok_or_data_error(lambda: read_mcg_proposals(path, shape=shape), path)
    if result is None:
        return
    zero_based, membership = result
    assert isinstance(zero_based, np.ndarray) and zero_based.dtype == np.int32 and zero_based.ndim == 2
    n = membership.shape[1]
    assert zero_based.min() >= 0 and zero_based.max() == n - 1
    assert membership.format == "csr" and membership.dtype == bool
    membership.check_format(full_check=True)
    if membership.nnz:
        assert membership.indices.min() >= 0 and membership.indices.max() < n
    assert (np.diff(membership.indptr) > 0).all()  # empty proposals are dropped


def _valid_mcg_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    savemat(buf, {"superpixels": rng.integers(1, 6, (5, 6)).astype(np.uint16),
                  "labels": _cells([rng.integers(1, 6, (k, 1)).astype(np.uint32) for k in (1, 3, 2)]),
                  "scores": np.array([[0.9], [0.5], [0.1]])})
    return buf.getvalue()


@fuzz(80)
@given(seed=st.integers(0, 3), cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
       junk=st.binary(max_size=200), kind=st.sampled_from(["truncate", "flip", "junk", "header+junk"]))
def test_mcg_random_and_corrupted_bytes(work, seed, cut, flips, junk, kind):
    data = bytearray(_valid_mcg_bytes(seed))
    if kind == "truncate":
        data = data[: int(len(data) * cut)]
    elif kind == "flip":
        for where, value in flips:
            data[min(int(where * len(data)), len(data) - 1)] = value
    elif kind == "junk":
        data = bytearray(junk)
    else:
        data = data[:128] + junk
    path = work / "corrupt mcg.mat"
    path.write_bytes(bytes(data))
    result = expect_ok_or_data_error(lambda: read_mcg_proposals(path), path)
    if result is not None:
        zero_based, membership = result
        assert zero_based.min() >= 0 and zero_based.max() == membership.shape[1] - 1
        membership.check_format(full_check=True)


@pinned(10)
@given(position=st.integers(0, 2), as_cell=st.booleans())
def test_mcg_nan_ids_are_a_data_error(work, position, as_cell):
    ids = np.array([1.0, 2.0, 3.0])
    ids[position] = np.nan
    path = work / "nan.mat"
    savemat(path, {"superpixels": np.array([[1, 2, 3]], np.uint16).repeat(2, 0),
                   "labels": _cells([ids.reshape(-1, 1)]) if as_cell else ids})
    result = expect_ok_or_data_error(lambda: read_mcg_proposals(path), path)
    if result is not None:
        result[1].check_format(full_check=True)
        assert result[1].indices.min() >= 0 and result[1].indices.max() < result[1].shape[1]


@pinned(10)
@given(big=st.integers(2**31 + 1, 2**32 - 1))
def test_mcg_superpixel_ids_beyond_int32(work, big):
    path = work / "big.mat"
    savemat(path, {"superpixels": np.array([[1, big]], np.uint32).repeat(2, 0), "labels": np.array([1.0])})
    result = expect_ok_or_data_error(lambda: read_mcg_proposals(path), path)
    if result is not None:
        assert result[0].min() >= 0 and result[0].max() == result[1].shape[1] - 1


# ====================================================================== images
def _supported(mode: str, fmt: str) -> bool:
    try:
        _encode(np.zeros((3, 4, 3), np.uint8), mode, fmt)
        return True
    except Exception:
        return False


def _encode(rgb: np.ndarray, mode: str, fmt: str) -> bytes:
    img = Image.fromarray(rgb)
    if mode == "I;16":
        img = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    elif mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


MODES = ["RGB", "L", "1", "P", "RGBA", "LA", "PA", "I", "I;16", "F", "CMYK", "YCbCr", "RGBX"]
FORMATS = ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA"]
COMBOS = [(m, f) for m in MODES for f in FORMATS if _supported(m, f)]
GREY_MODES = {"L", "1", "LA", "I", "I;16", "F"}


def image_record(path: Path, width: int, height: int) -> ImageRecord:
    return ImageRecord("img", str(path), width, height, (), annotation_path="Annotations/img.xml")


@fuzz(100)
@given(combo=st.sampled_from(COMBOS), height=st.integers(1, 20), width=st.integers(1, 20),
       seed=st.integers(0, 2**32 - 1))
def test_unusual_valid_images_load_as_rgb_uint8(work, combo, height, width, seed):
    mode, fmt = combo
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)
    path = work / f"unusual.{fmt.lower()}"
    path.write_bytes(_encode(rgb, mode, fmt))
    image = expect_ok_or_data_error(lambda: load_image(image_record(path, width, height)), path)
    assert image is not None, f"a valid {mode} {fmt} image was refused"
    assert image.shape == (height, width, 3) and image.dtype == np.uint8 and image.flags.writeable
    if mode in GREY_MODES:
        assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    if fmt in ("PNG", "BMP", "TIFF", "PPM", "TGA") and mode in ("RGB", "RGBA", "RGBX"):
        assert (image == rgb).all()  # lossless formats keep the pixels
    if fmt == "PNG" and mode == "L":
        assert (image[..., 0] == np.asarray(Image.fromarray(rgb).convert("L"))).all()


@fuzz(40)
@given(combo=st.sampled_from([c for c in COMBOS if c[1] in ("PNG", "JPEG", "BMP", "GIF")]),
       height=st.integers(1, 12), width=st.integers(1, 12), dh=st.integers(-3, 3), dw=st.integers(-3, 3))
def test_image_of_the_wrong_size(work, combo, height, width, dh, dw):
    assume((dh, dw) != (0, 0) and height + dh > 0 and width + dw > 0)
    path = work / f"wrong size.{combo[1].lower()}"
    path.write_bytes(_encode(np.full((height, width, 3), 90, np.uint8), *combo))
    record = image_record(path, width + dw, height + dh)
    with pytest.raises(DataError) as err:
        load_image(record)
    assert err.value.path == str(path) and f"image is {width}x{height}" in err.value.problem
    assert f"says {width + dw}x{height + dh}" in err.value.problem and record.annotation_path in err.value.problem


@fuzz(100)
@given(combo=st.sampled_from([c for c in COMBOS if c[1] in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]),
       seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["truncate", "truncate", "flip", "insert"]),
       cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=6),
       junk=st.binary(min_size=1, max_size=40))
def test_truncated_or_corrupted_images(work, combo, seed, kind, cut, flips, junk):
    height, width = 12, 16
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)
    data = bytearray(_encode(rgb, *combo))
    if kind == "truncate":
        data = data[: int(len(data) * cut)]
    elif kind == "flip":
        for where, value in flips:
            data[min(int(where * len(data)), len(data) - 1)] = value
    else:
        at = int(len(data) * cut)
        data = data[:at] + junk + data[at:]
    path = work / "corrupt.jpg"
    path.write_bytes(bytes(data))
    image = expect_ok_or_data_error(lambda: load_image(image_record(path, width, height)), path)
    if image is not None:
        assert image.shape == (height, width, 3) and image.dtype == np.uint8


MAGIC = st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00",
                         b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBP", b"P6\n", b"qoif"])


@fuzz(100)
@given(magic=MAGIC, body=st.binary(max_size=400))
def test_random_bytes_are_not_an_image(work, magic, body):
    path = work / "random bytes.jpg"
    path.write_bytes(magic + body)
    image = expect_ok_or_data_error(lambda: load_image(image_record(path, 4, 3)), path)
    if image is not None:
        assert image.shape == (3, 4, 3) and image.dtype == np.uint8


def test_missing_image_and_folder(work):
    assert expect_ok_or_data_error(lambda: load_image(image_record(work / "none.jpg", 4, 3)), work / "none.jpg") is None
    (work / "dir.jpg").mkdir(exist_ok=True)
    assert expect_ok_or_data_error(lambda: load_image(image_record(work / "dir.jpg", 4, 3)), work / "dir.jpg") is None


def test_image_claiming_huge_size(work):
    path = work / "bomb.jpg"
    path.write_bytes(_png_claiming_size(30000, 30000))
    assert expect_ok_or_data_error(lambda: load_image(image_record(path, 4, 4)), path) is None


def _dds_with_unknown_pixel_format() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buf, format="DDS")
    data = bytearray(buf.getvalue())
    data[80:84] = b"\0\0\0\0"  # DDS_PIXELFORMAT.dwFlags
    return bytes(data)


@pinned(5)
@given(reader=st.sampled_from(["image", "class", "object"]))
def test_unsupported_variant_of_a_known_format_is_a_data_error(work, reader):
    path = work / "dds.jpg"
    path.write_bytes(_dds_with_unknown_pixel_format())
    record = ImageRecord("d", str(path), 4, 4, (), class_gt_path=str(path), object_gt_path=str(path))
    fn = {"image": load_image, "class": load_class_gt, "object": load_object_gt}[reader]
    expect_ok_or_data_error(lambda: fn(record), path)


@pinned(10)
@given(seed=st.integers(0, 2**32 - 1))
def test_16_bit_image_keeps_its_contrast(work, seed):
    values = np.sort(np.random.default_rng(seed).choice(np.arange(0, 65536, 257), 8, replace=False)).astype(np.uint16)
    path = work / "sixteen.png"
    Image.fromarray(values.reshape(2, 4)).save(path)
    image = load_image(image_record(path, 4, 2))
    assert image.shape == (2, 4, 3) and image.dtype == np.uint8
    grey = image[..., 0].ravel().astype(int)
    assert (np.diff(grey) > 0).all(), (values, grey)  # order and distinctness preserved
