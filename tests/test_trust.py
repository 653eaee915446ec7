"""Trust II (issue 24): nothing silently wrong, nothing outside its roots, every resume possible.
Each test here failed on the code before it (the closing note of the issue says how each was seen)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from pseudolabel.catalog import open_dataset
from pseudolabel.core.errors import ConfigError, DataError, LayoutError, StoreError
from pseudolabel.runner import RunOptions, run
from pseudolabel.stages import get_stage
from pseudolabel.store import LabelStore

from .synth import make_voc_tree


def _without_objects(root: Path, image_id: str) -> None:
    xml = root / "Annotations" / f"{image_id}.xml"
    xml.write_text(re.sub(r"<object>.*?</object>", "", xml.read_text(), flags=re.S))


# -- 8. an image without boxes ------------------------------------------------------------------
STAGE_CONFIGS = [
    ("boxes", {}), ("grabcut", {"iterations": 1}), ("grabcut", {"reference": True}), ("proposals", {}),
    ("refine", {"source": "grabcut"}), ("fuse", {"sources": "grabcut,refine"}),
    ("fuse", {"sources": "grabcut,boxes", "rule": "intersect"}),
]


def test_an_image_without_boxes_is_background_in_every_stage(tmp_path, fake_weights):
    root = make_voc_tree(tmp_path / "VOC2012", n_images=3, size=(48, 64), splits={"train": ["2012_000000",
                                                                                            "2012_000001"]})
    _without_objects(root, "2012_000001")
    ds = open_dataset(root)
    cache = tmp_path / "c"
    configs = STAGE_CONFIGS + [("edges", {"weights": str(fake_weights[0])}), ("grabcut", {"pairwise": "edges"}),
                               ("bbam", {"weights": "toy", "steps": 1, "num_jitter": 20, "min_size": 48,
                                         "max_size": 96})]
    for name, values in sorted(configs, key=lambda c: c[0] == "refine" or c[0] == "fuse"):
        config = get_stage(name).config_class(**values)
        summary = run(name, config, ds, "train", cache, progress=False)
        assert (summary.done, summary.failed) == (2, 0), (name, values)
        if get_stage(name).output == "labels":
            sample = LabelStore(summary.store, load_masks=True)["2012_000001"]
            assert sample.masks.shape == (0, 48, 64) and len(sample.boxes) == 0, (name, values)
            assert not sample.label.any(), (name, values)          # all background, nothing ignored
            assert np.isnan(sample.filling_rate).all()


# -- 2. exports write only their own files ---------------------------------------------------------
@pytest.fixture
def boxes_store(voc_root, tmp_path):
    run("boxes", None, open_dataset(voc_root), "train", tmp_path / "cache", progress=False)
    return tmp_path / "cache" / "VOC2012" / "train" / "boxes.h5"


def test_yolo_export_never_touches_a_users_files(invoke, voc_root, boxes_store, tmp_path):
    out = tmp_path / "mine"
    (out / "labels" / "train").mkdir(parents=True)
    mine = out / "labels" / "train" / "2012_000000.txt"
    mine.write_text("0 0.1 0.1 0.2 0.2 0.3 0.1\n")
    (out / "labels" / "train" / "notes.txt").write_text("my own")
    common = ["--data-root", voc_root, "--cache", tmp_path / "cache", "--format", "yolo"]
    refused = invoke("export", *common, "--out", out)
    assert refused.exit_code == 1 and "2012_000000.txt: already there and not written by a pseudolabel" in refused.output
    assert mine.read_text() == "0 0.1 0.1 0.2 0.2 0.3 0.1\n" and not (out / "data.yaml").exists()
    mine.unlink()
    done = invoke("export", *common, "--out", out)
    assert done.exit_code == 0, done.output
    assert (out / "labels" / "train" / "notes.txt").read_text() == "my own"       # never removed
    assert len(list((out / "labels" / "train").glob("2012_*.txt"))) == 6
    again = invoke("export", *common, "--out", out)                                # its own files: replaced
    assert again.exit_code == 0 and (out / "labels" / "train" / "notes.txt").exists()


def test_a_re_export_removes_only_what_its_manifest_lists(invoke, voc_root, tmp_path):
    ds = open_dataset(voc_root)
    run("boxes", None, ds, "train", tmp_path / "cache", progress=False)
    out = tmp_path / "png"
    common = ["--data-root", voc_root, "--cache", tmp_path / "cache", "--out", out]
    assert invoke("export", *common).exit_code == 0
    assert len(list((out / "SegmentationClass").glob("*.png"))) == 6
    (voc_root / "JPEGImages" / "2012_000003.jpg").write_bytes(b"junk")             # now fails
    run("boxes", None, ds, "train", tmp_path / "cache", RunOptions(force=True, on_error="skip"), progress=False)
    (out / "SegmentationClass" / "keep.png").write_bytes(b"user")
    assert invoke("export", *common).exit_code == 0
    names = sorted(p.name for p in (out / "SegmentationClass").iterdir())
    assert "2012_000003.png" not in names and "keep.png" in names and len(names) == 6


@pytest.mark.parametrize("fmt", ["png", "coco", "yolo"])
def test_an_export_into_the_data_root_is_refused(invoke, voc_root, boxes_store, tmp_path, fmt):
    human = (voc_root / "SegmentationClass" / "2012_000000.png").read_bytes()
    for out in (voc_root, voc_root / "sub"):
        result = invoke("export", "--data-root", voc_root, "--cache", tmp_path / "cache", "--format", fmt,
                        "--out", out)
        assert result.exit_code == 1 and "inside the data root" in result.output
    assert (voc_root / "SegmentationClass" / "2012_000000.png").read_bytes() == human
    assert not (voc_root / "sub").exists()


# -- 7. recipe outputs stay under the output root ------------------------------------------------
@pytest.mark.parametrize("out", ["/tmp/victim", "../victim", "a/../../victim"])
def test_a_recipe_cannot_export_outside_the_output_root(tmp_path, out):
    from pseudolabel.app.recipe import load_recipe
    path = tmp_path / "r.toml"
    path.write_text(f'[[step]]\nstage = "boxes"\n[[step]]\nexport = "boxes"\nout = "{out}"\n')
    with pytest.raises(ConfigError, match="out must be a relative folder without '..'"):
        load_recipe(path)


def test_recipe_exports_go_under_the_output_root_or_the_named_folder(invoke, voc_root, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[[step]]\nstage = "boxes"\n[[step]]\nexport = "boxes"\nout = "mine/boxes"\n')
    assert invoke("run", path, "--data-root", voc_root, "--cache", tmp_path / "c").exit_code == 0
    assert len(list((tmp_path / "c" / "mine" / "boxes" / "SegmentationClass").glob("*.png"))) == 6
    assert invoke("run", path, "--data-root", voc_root, "--cache", tmp_path / "c", "--exports",
                  tmp_path / "elsewhere").exit_code == 0
    assert len(list((tmp_path / "elsewhere" / "mine" / "boxes" / "SegmentationClass").glob("*.png"))) == 6


# -- 3. a damaged journal entry is dropped and redone --------------------------------------------
def _interrupted(voc_root, tmp_path, done: int = 3):
    """A boxes run with ``done`` images in its journal and no store (as a kill leaves it)."""
    from pseudolabel.core.output_root import journal_dir
    ds = open_dataset(voc_root)
    store = run("boxes", None, ds, "train", tmp_path / "ref", progress=False).store
    reference = LabelStore(store)
    summary = run("boxes", None, ds, "train", tmp_path / "c", progress=False)
    journal = journal_dir(summary.store)
    from pseudolabel.store.journal import Journal
    from pseudolabel.store.index import StoreFile
    j = Journal(journal)
    with StoreFile(summary.store) as f:           # rebuild the journal a killed run would leave
        j.start({**{k: v for k, v in f.index.meta.items() if k in ("stage", "stage_revision", "dataset",
                 "dataset_root", "dataset_kind", "split", "cache_key", "config_hash", "inputs")},
                 "config": json.dumps(f.index.meta["config"], sort_keys=True), "ids": f.index.ids,
                 "created": f.index.meta["created"]})
        for image_id in f.index.ids[:done]:
            j.put(image_id, f.entry(image_id))
    summary.store.unlink()
    return ds, journal, reference


@pytest.mark.parametrize("damage", ["empty", "flipped"])
def test_a_damaged_journal_entry_is_named_dropped_and_redone(invoke, voc_root, tmp_path, damage):
    from .conftest import store_contents
    ds, journal, reference = _interrupted(voc_root, tmp_path)
    entry = journal / "2012_000001.npz"
    if damage == "empty":
        entry.write_bytes(b"")                                   # what a power cut leaves
    else:
        data = bytearray(entry.read_bytes())
        data[len(data) // 2] ^= 0xFF
        entry.write_bytes(bytes(data))
    result = invoke("boxes", "--data-root", voc_root, "--cache", tmp_path / "c")
    assert result.exit_code == 0, result.output
    assert "2012_000001.npz: damaged (" in result.output and "its image is redone" in result.output
    assert "resuming" in result.output and "2 of 6 images already finished" in result.output
    store = tmp_path / "c" / "VOC2012" / "train" / "boxes.h5"
    assert store_contents(store) == store_contents(reference.path)


def test_a_damaged_journal_manifest_is_written_again_and_the_entries_kept(invoke, voc_root, tmp_path):
    ds, journal, reference = _interrupted(voc_root, tmp_path)
    (journal / "manifest.json").write_bytes(b"")
    result = invoke("boxes", "--data-root", voc_root, "--cache", tmp_path / "c")
    assert result.exit_code == 0, result.output
    assert "manifest.json: damaged (" in result.output and "3 of 6 images already finished" in result.output


def test_journal_entries_are_synced_before_they_count(tmp_path, monkeypatch):
    from pseudolabel.store import journal as journal_module
    synced = []
    real = os.fsync
    monkeypatch.setattr(journal_module.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    j = journal_module.Journal(tmp_path / "j")
    j.start({"ids": []})
    j.put_failure("a", "broken")
    assert len(synced) >= 4                      # each file and its folder, after each write


# -- 4. checksums cannot be switched off ----------------------------------------------------------
@pytest.mark.parametrize("remove", [("attr",), ("dataset",), ("attr", "dataset")])
def test_a_store_without_its_checksums_is_damaged(invoke, boxes_store, tmp_path, remove):
    import h5py
    import shutil
    copy = tmp_path / "copy.h5"
    shutil.copy(boxes_store.resolve(), copy)
    with h5py.File(copy, "a") as f:
        if "attr" in remove:
            del f.attrs["index_crc32"]
        if "dataset" in remove:
            del f["index/checksum"]
        f["images/2012_000000/filling_rate"][...] = 0.5          # an edit that would then be served
    with pytest.raises(StoreError, match="damaged store: .*missing \\(a format-3 store carries checksums"):
        LabelStore(copy)
    result = invoke("info", copy, "--check")
    assert result.exit_code == 1 and "missing (a format-3 store carries checksums" in result.output
    assert "Traceback" not in result.output


# -- 6. ids are checked where they are read ---------------------------------------------------------
def test_a_store_whose_index_holds_a_path_is_refused(invoke, voc_root, boxes_store, tmp_path):
    import h5py
    import shutil
    from pseudolabel.store.schema import INDEX_CRC, index_checksum
    copy = tmp_path / "evil.h5"
    shutil.copy(boxes_store.resolve(), copy)
    with h5py.File(copy, "a") as f:                 # a consistent store, checksums and all
        ids = [i.decode() if isinstance(i, bytes) else i for i in f["index/ids"][()]]
        ids[0] = "../../x"
        del f["index/ids"]
        f["index"].create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype("utf-8"))
        f["images"].move("2012_000000", "x")
        raw = dict(f.attrs)
        idx = f["index"]
        f.attrs[INDEX_CRC] = index_checksum(raw, ids, idx["done"][()], [e.decode() if isinstance(e, bytes) else e
                                            for e in idx["error"][()]], idx["height"][()], idx["width"][()],
                                            idx["num_objects"][()], idx["checksum"][()])
    for args in (["info", copy, "--check"], ["export", "--data-root", voc_root, "--store", copy,
                                               "--out", tmp_path / "out"]):
        result = invoke(*args)
        assert result.exit_code == 1 and "holds the image id '../../x'" in result.output, result.output
    assert not (tmp_path / "x.png").exists() and not (tmp_path.parent / "x.png").exists()


def test_split_ids_keep_their_spaces_and_paths_are_refused(tmp_path):
    root = make_voc_tree(tmp_path / "VOC2012", n_images=2, size=(48, 64), splits={"train": ["2012_000000"]})
    for sub, ext in (("JPEGImages", ".jpg"), ("Annotations", ".xml")):
        (root / sub / f"2012_000001{ext}").rename(root / sub / f"my photo 1{ext}")
    (root / "ImageSets" / "Segmentation" / "spaced.txt").write_text("my photo 1\n")
    (records,) = [open_dataset(root).records("spaced")]
    assert [r.image_id for r in records] == ["my photo 1"] and not hasattr(records[0], "problem")
    for bad in ("../x", "a/b", ".."):
        (root / "ImageSets" / "Segmentation" / "bad.txt").write_text(f"{bad}\n")
        with pytest.raises(LayoutError, match="invalid image id"):
            open_dataset(root).records("bad")


# -- 10. data roots and stores the system makes awkward ---------------------------------------------
def test_a_data_root_that_is_a_symlink_loop_is_named(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(LayoutError, match="data root"):
        open_dataset(tmp_path / "a")


def test_a_data_root_whose_path_is_not_utf8_is_refused_before_any_work(tmp_path):
    weird = os.fsdecode(os.fsencode(str(tmp_path)) + b"/voc\xff")
    make_voc_tree(Path(weird) / "VOC2012", n_images=2, size=(48, 64))
    with pytest.raises(LayoutError, match="not valid UTF-8"):
        open_dataset(weird)


def test_a_finished_store_on_a_read_only_folder_has_nothing_to_do(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    run("boxes", None, ds, "train", tmp_path / "c", progress=False)
    folders = [p for p in (tmp_path / "c").rglob("*") if p.is_dir()] + [tmp_path / "c"]
    for p in folders:
        p.chmod(0o555)
    try:
        if os.access(tmp_path / "c", os.W_OK):
            pytest.skip("this user writes into read-only folders (root)")
        summary = run("boxes", None, ds, "train", tmp_path / "c", progress=False)
        assert summary.nothing_to_do
    finally:
        for p in folders:
            p.chmod(0o755)


# -- 11. a bound on objects per image ------------------------------------------------------------
def test_an_image_with_too_many_objects_fails_alone_naming_the_bound(invoke, tmp_path):
    root = make_voc_tree(tmp_path / "VOC2012", n_images=2, size=(48, 64), splits={"train": ["2012_000000",
                                                                                            "2012_000001"]})
    xml = root / "Annotations" / "2012_000001.xml"
    one = re.search(r"<object>.*?</object>", xml.read_text(), flags=re.S).group(0)
    xml.write_text(xml.read_text().replace("</annotation>", one * 1500 + "</annotation>"))
    common = ["boxes", "--data-root", root, "--cache", tmp_path / "c"]
    refused = invoke(*common)
    assert refused.exit_code == 1
    assert "2012_000001.xml: 1502 objects, more than the 1000 an image may have (--max-objects" in refused.output
    assert invoke(*common, "--max-objects", "2000").exit_code == 0


# -- 9. a full disk while the store is written --------------------------------------------------
def test_a_full_disk_while_the_store_is_written_is_one_line_and_resumes(invoke, voc_root, tmp_path, monkeypatch):
    from pseudolabel.store import writer
    from .conftest import store_contents
    real = writer._write

    def full(path, *args):
        real(path, *args)
        raise RuntimeError("Disable slist on flush dest failure failed (file write failed: time = Thu Dec  3 "
                           "16:30:15 2026\n, filename = 'x.h5.tmp', file descriptor = 4, errno = 28, error "
                           "message = 'No space left on device', buf = 0x55, total write size = 1520)")
    monkeypatch.setattr(writer, "_write", full)
    result = invoke("-q", "boxes", "--data-root", voc_root, "--cache", tmp_path / "c")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "cannot write the store (No space left on device); every image is in the journal" in result.output
    store = tmp_path / "c" / "VOC2012" / "train" / "boxes"
    assert not list(store.glob("*.h5")) and not list(store.glob("*.tmp"))          # no partial file
    monkeypatch.setattr(writer, "_write", real)
    assert invoke("boxes", "--data-root", voc_root, "--cache", tmp_path / "c").exit_code == 0
    reference = run("boxes", None, open_dataset(voc_root), "train", tmp_path / "ref", progress=False).store
    assert store_contents(tmp_path / "c" / "VOC2012" / "train" / "boxes.h5") == store_contents(reference)


def test_a_real_full_disk_when_a_small_file_system_can_be_mounted(voc_root, tmp_path):
    import shutil
    import subprocess
    import sys
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24K", "tmpfs", str(mount)],
                                           capture_output=True).returncode:
        pytest.skip("cannot mount a small file system here")
    try:
        result = subprocess.run([sys.executable, "-m", "pseudolabel", "-q", "boxes", "--data-root", str(voc_root),
                                 "--cache", str(mount / "c")], capture_output=True, text=True)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
    finally:
        subprocess.run(["umount", str(mount)])
    shutil.rmtree(mount, ignore_errors=True)


# -- 5. nothing is unpickled ----------------------------------------------------------------------------
def test_a_planted_pickle_as_the_resume_state_is_never_run(invoke, voc_root, tmp_path):
    import pickle
    out = tmp_path / "detector"
    out.mkdir()
    victim = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(victim), "w"))
    (out / "last.pth").write_bytes(pickle.dumps({"identity": Payload()}, protocol=2))
    result = invoke("train-detector", "--data-root", voc_root, "--out", out, "--init", "none", "--epochs", "1",
                    "--device", "cpu", "--min-size", "64", "--max-size", "96", "--min-size-train", "[64]")
    assert result.exit_code == 1 and "last.pth: not a resume state of train-detector that loads as plain" \
        in result.output
    assert not victim.exists()


def test_no_file_is_ever_unpickled():
    import ast
    package = Path(__file__).resolve().parents[1] / "pseudolabel"
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "load":
                for kw in node.keywords:
                    if kw.arg in ("weights_only", "allow_pickle"):
                        assert kw.value.value is (kw.arg == "weights_only"), path
            assert not (isinstance(node, ast.Import) and any(a.name == "pickle" for a in node.names)), path


# -- 1. EXIF orientation ------------------------------------------------------------------------------
INVERSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_90",
           7: "TRANSVERSE", 8: "ROTATE_270"}
"""The transpose that stores an upright photo so that EXIF ``tag`` turns it upright again."""


def _tagged_tree(tmp_path, tag: int, boxes_frame: str):
    """A VOC tree of one photo stored with EXIF orientation ``tag``: upright it is 96 wide and 64
    high with a bright object in (10, 8)-(40, 30); the annotation gives size and box in the
    ``upright`` frame or in the ``stored`` one."""
    from PIL import Image
    from pseudolabel.catalog.pixels import orient
    from pseudolabel.catalog.vocwrite import make_voc_folders, voc_xml, write_split
    from pseudolabel.core.records import ObjectRecord
    root = make_voc_folders(tmp_path / f"voc{tag}{boxes_frame}" / "VOC2012")
    upright = np.full((64, 96, 3), 40, np.uint8)
    upright[8:30, 10:40] = (250, 40, 40)
    stored = np.asarray(Image.fromarray(upright).transpose(getattr(Image.Transpose, INVERSE[tag])))
    assert np.array_equal(orient(stored, tag), upright)
    exif = Image.Exif()
    exif[0x0112] = tag
    Image.fromarray(stored).save(root / "JPEGImages" / "p.jpg", quality=100, exif=exif.tobytes())
    if boxes_frame == "upright":
        size, box = (96, 64), (10, 8, 40, 30)
    else:                                           # where the object lies in the stored pixels
        ys, xs = np.nonzero(stored[..., 0] > 150)
        size, box = (stored.shape[1], stored.shape[0]), (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    (root / "Annotations" / "p.xml").write_text(voc_xml("p", *size, [ObjectRecord(15, tuple(int(v) for v in box))]))
    write_split(root, "train", ["p"])
    return root, upright, stored


@pytest.mark.parametrize("tag", [3, 6, 8])
@pytest.mark.parametrize("boxes_frame", ["upright", "stored"])
def test_exif_orientation_decides_one_frame_and_every_reader_follows_it(invoke, tmp_path, tag, boxes_frame):
    from pseudolabel.store import LabelDataset
    root, upright, stored = _tagged_tree(tmp_path, tag, boxes_frame)
    applied = boxes_frame == "upright" or tag == 3          # 180 degrees: both frames fit, the tag's wins
    cache = tmp_path / "c"
    result = invoke("boxes", "--data-root", root, "--cache", cache)
    assert result.exit_code == 0, result.output
    assert f"EXIF orientation {'applied' if applied else 'ignored'} for 1 photo(s): p ({tag})" in result.output
    sample = LabelStore(cache / "VOC2012" / "train" / "boxes.h5")["p"]
    assert (sample.attrs["orientation"], sample.attrs["exif_orientation"]) == ((tag if applied else 1), tag)
    item = LabelDataset(cache / "VOC2012" / "train" / "boxes.h5")[0]
    photo = item["image"].permute(1, 2, 0).numpy()
    expected = upright if applied else stored
    assert photo.shape == expected.shape and np.abs(photo.astype(int) - expected).mean() < 3
    label = item["label"].numpy()
    assert label.shape == photo.shape[:2]
    x0, y0, x1, y1 = sample.boxes[0]
    assert (label[y0:y1, x0:x1] == 15).all() and (label == 15).sum() == (x1 - x0) * (y1 - y0)
    if (boxes_frame == "upright") == applied:       # boxes drawn in the frame chosen: on the object
        red = (photo[..., 0] > 150) & (photo[..., 1] < 100)
        assert (label[red] == 15).mean() > 0.95 and (label[~red] == 0).mean() > 0.95
    out = tmp_path / "yolo"
    assert invoke("export", "--data-root", root, "--cache", cache, "--format", "yolo", "--out", out).exit_code == 0
    written = out / "images" / "train" / ("p.jpg" if applied else "p.png")
    assert written.exists() and (written.is_symlink() == applied)


def test_a_size_that_fits_no_frame_names_the_exif_orientation(tmp_path):
    from pseudolabel.catalog.pixels import load_image
    root, _, _ = _tagged_tree(tmp_path, 6, "upright")
    xml = root / "Annotations" / "p.xml"
    xml.write_text(xml.read_text().replace("<width>96</width>", "<width>90</width>"))
    (record,) = open_dataset(root).records("train")
    with pytest.raises(DataError, match="image is 64x96 \\(and 96x64 turned upright by its EXIF orientation 6\\) "
                                        "but its annotation .* says 90x64"):
        load_image(record)


def test_orient_turns_photos_as_pillow_does():
    from PIL import Image, ImageOps
    from pseudolabel.catalog.pixels import orient
    pixels = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    for tag in range(1, 9):
        img = Image.fromarray(pixels)
        exif = img.getexif()
        exif[0x0112] = tag
        img.info["exif"] = exif.tobytes()
        turned = np.asarray(ImageOps.exif_transpose(img))
        assert np.array_equal(orient(pixels, tag), turned), tag


def test_cache_clean_removes_only_what_is_verifiably_pseudolabels(invoke, voc_root, tmp_path):
    """Pointed at a folder that is not an output root (`--cache ..`, a typo), it removes nothing of
    the user's: links of other shapes, files named like stores that are not, folders of files."""
    user = tmp_path / "user" / "a" / "b"
    (user / "stage").mkdir(parents=True)
    (user / "stage" / "0123456789ab.h5").write_bytes(b"not hdf5")          # named like a store
    (user / "photo.h5").symlink_to(user / "stage" / "0123456789ab.h5")     # a link, not ours
    (user / "stage" / "deadbeef.h5.partial").mkdir()                        # a folder named like a journal
    (user / "stage" / "deadbeef.h5.partial" / "keep.txt").write_text("mine")
    run("boxes", None, open_dataset(voc_root), "train", tmp_path / "user", progress=False)   # and a real store
    result = invoke("cache", "clean", "--all", "--partial", "--cache", tmp_path / "user")
    assert result.exit_code == 0, result.output
    assert (user / "stage" / "0123456789ab.h5").read_bytes() == b"not hdf5" and (user / "photo.h5").is_symlink()
    assert (user / "stage" / "deadbeef.h5.partial" / "keep.txt").read_text() == "mine"
    ours = tmp_path / "user" / "VOC2012" / "train"
    assert not (ours / "boxes.h5").is_symlink() and not list((ours / "boxes").glob("*.h5"))   # ours went
