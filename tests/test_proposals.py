from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.io import savemat

from pseudolabel.catalog import (edge_file, load_object_gt, mcg_file, open_dataset, read_edge_map,
                                 read_mcg_proposals)
from pseudolabel.core.classes import IGNORE, VOC_CLASSES
from pseudolabel.core.labels import box_masks
from pseudolabel.core.errors import DataError, StoreError
from pseudolabel.evaluation.proposals import AREA_BINS, Overlap, _breakdown, best_overlaps, instance_classes
from pseudolabel.runner import RunOptions, run
from pseudolabel.stages.proposals import ProposalConfig
from pseudolabel.stages.refine import RefineConfig
from pseudolabel.store import LabelStore, ProposalStore

from .synth import outline


def write_mcg(path, superpixels_1based, proposals_1based):
    """An official-format MCG file: superpixels (H, W) from 1; labels a (P, 1) cell array of
    column vectors of 1-based superpixel ids; scores (P, 1)."""
    cell = np.empty((len(proposals_1based), 1), dtype=object)
    for i, ids in enumerate(proposals_1based):
        cell[i, 0] = np.array(ids, dtype=np.uint32).reshape(-1, 1)
    savemat(path, {"superpixels": superpixels_1based.astype(np.uint16), "labels": cell,
                   "scores": np.linspace(1, 0, len(proposals_1based)).reshape(-1, 1)})


def test_read_official_mcg_file(tmp_path):
    sp = np.array([[1, 1, 2], [3, 3, 2]])
    write_mcg(tmp_path / "2008_000001.mat", sp, [[1, 2], [3], [1, 2, 3]])
    zero_based, m = read_mcg_proposals(tmp_path / "2008_000001.mat", shape=(2, 3))
    assert (zero_based == sp - 1).all() and zero_based.dtype == np.int32
    assert m.toarray().tolist() == [[True, True, False], [False, False, True], [True, True, True]]
    write_mcg(tmp_path / "000032.mat", sp, [[2]])              # VOC 2007 naming in the 2007 archive
    assert mcg_file(tmp_path, "2007_000032").name == "000032.mat"
    assert read_mcg_proposals(mcg_file(tmp_path, "2007_000032"))[1].toarray().tolist() == [[False, True, False]]


def test_mcg_file_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="MCG proposal file is missing"):
        read_mcg_proposals(tmp_path / "nope.mat")
    savemat(tmp_path / "a.mat", {"superpixels": np.ones((2, 2), np.uint16)})
    with pytest.raises(DataError, match=r"a\.mat: MCG file has no 'labels'"):
        read_mcg_proposals(tmp_path / "a.mat")
    write_mcg(tmp_path / "b.mat", np.ones((2, 2)), [[1, 5]])
    with pytest.raises(DataError, match="not whole numbers in 1..1"):
        read_mcg_proposals(tmp_path / "b.mat")
    write_mcg(tmp_path / "c.mat", np.ones((2, 2)), [[1]])
    with pytest.raises(DataError, match="superpixels are 2x2 but the image is 3x2"):
        read_mcg_proposals(tmp_path / "c.mat", shape=(2, 3))
    (tmp_path / "d.mat").write_bytes(b"not matlab")
    with pytest.raises(DataError, match=r"d\.mat: cannot read MATLAB file"):
        read_mcg_proposals(tmp_path / "d.mat")


def test_read_edge_maps_of_8_and_16_bits(tmp_path):
    from PIL import Image
    Image.fromarray(np.array([[0, 255], [51, 102]], np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.array([[0, 65535], [13107, 26214]], np.uint16)).save(tmp_path / "b.png")
    for name in ("a", "b"):
        edges = read_edge_map(edge_file(tmp_path, name), shape=(2, 2))
        assert edges.dtype == np.float32 and np.allclose(edges, [[0, 1], [0.2, 0.4]])


def test_edge_map_errors_name_the_file(tmp_path):
    from PIL import Image
    with pytest.raises(DataError, match=r"nope\.png: edge map is missing"):
        read_edge_map(tmp_path / "nope.png")
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match=r"rgb\.png: an edge map must be a grey PNG of 8 or 16 bits, not mode RGB"):
        read_edge_map(tmp_path / "rgb.png")
    Image.fromarray(np.zeros((2, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(DataError, match="edge map is 3x2 but the image is 4x2"):
        read_edge_map(tmp_path / "small.png", shape=(2, 4))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"bad\.png: cannot decode edge map PNG"):
        read_edge_map(tmp_path / "bad.png")


def outline_edges(voc_root, split, edge_dir):
    """Edge maps (8-bit PNGs) that mark the ground-truth instance outlines: a perfect detector."""
    from PIL import Image
    edge_dir.mkdir(exist_ok=True)
    for r in open_dataset(voc_root).records(split):
        edges = outline(load_object_gt(r)).astype(np.uint8) * 255
        Image.fromarray(edges).save(edge_file(edge_dir, r.image_id))


def test_proposals_from_given_edges(voc_root, tmp_path, invoke):
    outline_edges(voc_root, "train", tmp_path / "edges")
    env = {"PSEUDOLABEL_DATA": str(voc_root)}
    result = invoke("proposals", "--edges", tmp_path / "edges", env=env)
    assert result.exit_code == 0, result.output
    store = ProposalStore(tmp_path / "cache" / "VOC2012" / "train" / "proposals.h5")
    assert store.meta["config"]["edges"] == str(tmp_path / "edges")
    assert json.loads(invoke("-q", "evaluate-proposals", "--json", env=env).stdout)["all"]["abo"] > 0.9
    # a missing map stops the run naming the file, or with --on-error skip fails that image only
    first = open_dataset(voc_root).records("train")[0].image_id
    edge_file(tmp_path / "edges", first).unlink()
    stopped = invoke("proposals", "--edges", tmp_path / "edges", "--force", env=env)
    assert stopped.exit_code != 0 and f"{first}.png: edge map is missing" in stopped.output
    skipped = invoke("proposals", "--edges", tmp_path / "edges", "--force", "--on-error", "skip", env=env)
    assert skipped.exit_code == 0, skipped.output
    assert ProposalStore(tmp_path / "cache" / "VOC2012" / "train" / "proposals.h5").failed.keys() == {first}
    # a folder that is not there, or two sources at once, are refused before any work
    for args, message in ((["--edges", tmp_path / "none"], "--edges: " + str(tmp_path / "none") + " is not a folder"),
                          (["--from-mcg", tmp_path / "none"], "--from-mcg: " + str(tmp_path / "none") + " is not a folder"),
                          (["--edges", tmp_path / "edges", "--from-mcg", tmp_path], "pass one")):
        refused = invoke("proposals", *args, "--force", env=env)
        assert refused.exit_code != 0 and message in refused.output


def gt_proposals(voc_root, split, mcg_dir, grid=8):
    """Official-format files whose superpixels follow the ground-truth instances (cut by a grid)
    and whose proposals include each whole instance: refinement can then recover them."""
    mcg_dir.mkdir(exist_ok=True)
    for r in open_dataset(voc_root).records(split):
        inst = load_object_gt(r).astype(np.int64)
        inst[inst == IGNORE] = 0
        rows, cols = np.mgrid[0:r.height, 0:r.width]
        cellid = (rows // grid) * 1000 + cols // grid
        _, sp = np.unique(inst * 10 ** 6 + cellid, return_inverse=True)
        sp = sp.reshape(inst.shape) + 1
        proposals = [np.unique(sp[inst == k]).tolist() for k in np.unique(inst) if k]
        proposals += [[s] for s in range(1, sp.max() + 1)]
        write_mcg(mcg_dir / f"{r.image_id}.mat", sp, proposals)


def test_from_mcg_store_and_evaluate_proposals(voc_root, tmp_path, invoke):
    gt_proposals(voc_root, "train", tmp_path / "mcg")
    env = {"PSEUDOLABEL_DATA": str(voc_root)}
    result = invoke("proposals", "--from-mcg", tmp_path / "mcg", env=env)
    assert result.exit_code == 0, result.output
    store = ProposalStore(tmp_path / "cache" / "VOC2012" / "train" / "proposals.h5")
    p = store[0]
    assert p.superpixels.dtype == np.int32 and p.membership.shape[1] == p.superpixels.max() + 1
    report = json.loads(invoke("-q", "evaluate-proposals", "--json", env=env).stdout)
    # proposals include every whole instance (up to the GT void band): ABO is ~1 everywhere
    assert report["all"]["abo"] > 0.99 and report["recall_70"] == 1.0 and report["proposals_per_image"] > 1
    assert {"abo", "recall_50", "recall_70", "all", "seconds_per_image"} <= set(report)
    # the breakdowns partition the same instances, and name the classes the split has
    for part in (report, report["all"]):
        assert sum(v["instances"] for v in part["by_size"].values()) == part["instances"]
        assert sum(v["instances"] for v in part["per_class"].values()) == part["instances"]
    classes = {VOC_CLASSES[c] for r in open_dataset(voc_root).records("train") for c in r.classes()}
    assert set(report["all"]["per_class"]) == classes
    text = invoke("-q", "evaluate-proposals", env=env).stdout
    assert "by size (pixels): " in text and "per class: " in text


def test_proposal_breakdown_by_size_and_class():
    rows = [Overlap(0.9, 40, 40, 1600, 1), Overlap(0.5, 20, 20, 300, 2),
            Overlap(0.7, 200, 100, 15000, 3), Overlap(0.3, 40, 40, 1000, 4)]
    out = _breakdown(rows, ["cat", "dog", "cat", "dog"])
    assert [name for name, _, _ in AREA_BINS] == list(out["by_size"])
    assert out["by_size"]["small"] == {"abo": 0.4, "recall_50": 0.5, "recall_70": 0.0, "instances": 2}
    assert out["by_size"]["medium"]["abo"] == 0.9 and out["by_size"]["large"]["abo"] == 0.7
    assert list(out["per_class"]) == ["cat", "dog"]          # VOC order, absent classes left out
    assert out["per_class"]["cat"]["abo"] == 0.8 and out["per_class"]["dog"]["recall_50"] == 0.5


def test_instance_classes_come_from_the_class_map():
    inst = np.array([[1, 1, 2, 2], [1, 255, 2, 3], [0, 0, 0, 0]], np.uint8)
    cls = np.array([[15, 15, 8, 8], [12, 255, 8, 255], [0, 0, 0, 3]], np.uint8)
    of = instance_classes(inst, cls)
    # majority under the instance (15 over 12), void ignored; instance 3 only covers void: none
    assert (of[1], of[2], of[3]) == (15, 8, 0)


def test_best_overlap_excludes_void_and_is_exact():
    inst = np.zeros((10, 10), np.uint8)
    inst[2:6, 2:6] = 1
    inst[2, 2] = IGNORE                        # void pixel: counted in neither
    sp = np.arange(100, dtype=np.int32).reshape(10, 10) // 10    # superpixel = row
    import scipy.sparse as sparse
    m = sparse.csr_matrix(np.eye(10, dtype=bool)[[2, 3]].astype(bool))   # rows 2 and 3
    (best, w, h, area, k), = best_overlaps(sp, m, inst)
    # row 3: 10 valid pixels, 4 in the instance (15 pixels): IoU 4 / 21; row 2: 9 valid, 3 in it
    assert best == pytest.approx(4 / 21) and (w, h, area, k) == (4, 4, 15, 1)


def test_refine_recovers_instances_and_fuse_marks_disagreement(voc_root, tmp_path, invoke):
    gt_proposals(voc_root, "trainval", tmp_path / "mcg")
    env = {"PSEUDOLABEL_DATA": str(voc_root)}
    for args in (["boxes"], ["grabcut"], ["proposals", "--from-mcg", tmp_path / "mcg"], ["refine"]):
        result = invoke(*args, "--split", "trainval", env=env)
        assert result.exit_code == 0, result.output
    def miou(stage):
        return json.loads(invoke("-q", "evaluate", "--stage", stage, "--split", "trainval", "--json", env=env).stdout)
    assert miou("refine")["miou"] >= 95
    store = LabelStore(tmp_path / "cache" / "VOC2012" / "trainval" / "refine.h5", load_masks=True)
    statuses = {k for k in store[0].objects if k.startswith("status_")}
    assert statuses == {"status_refined", "status_small_box", "status_no_proposal"}
    records = {r.image_id: r for r in open_dataset(voc_root).records("trainval")}
    refined = 0
    for sample in store:                       # refined masks follow the instances' superpixels
        inst = load_object_gt(records[sample.image_id])
        for k, done in enumerate(sample.objects["status_refined"]):
            if done:
                truth = inst == k + 1
                iou = (sample.masks[k] & truth).sum() / (sample.masks[k] | truth).sum()
                assert iou > 0.9
                refined += 1
    assert refined > 3

    result = invoke("fuse", "--split", "trainval", "--sources", "boxes,refine", env=env)
    assert result.exit_code == 0, result.output
    fused = LabelStore(tmp_path / "cache" / "VOC2012" / "trainval" / "fuse.h5")
    boxes = LabelStore(tmp_path / "cache" / "VOC2012" / "trainval" / "boxes.h5")
    for image_id in fused.ids:
        a, b, f = boxes[image_id].label, store[image_id].label, fused[image_id].label
        agree = (a == b) & (a != IGNORE)
        assert (f[agree] == a[agree]).all() and (f[~agree] == IGNORE).all()
    assert miou("fuse")["coverage"] < 1.0

    # M∩G+: inside the boxes only agreed foreground, the rest of each box 255; outside, background
    result = invoke("fuse", "--split", "trainval", "--sources", "boxes,refine", "--rule", "intersect", env=env)
    assert result.exit_code == 0, result.output
    sdi = LabelStore(tmp_path / "cache" / "VOC2012" / "trainval" / "fuse.h5")
    for image_id in sdi.ids:
        a, b, f = boxes[image_id].label, store[image_id].label, sdi[image_id].label
        inside = box_masks(boxes[image_id].boxes, a.shape).any(axis=0)
        keep = inside & (a == b) & (a != 0) & (a != IGNORE)
        assert (f[keep] == a[keep]).all() and (f[inside & ~keep] == IGNORE).all() and (f[~inside] == 0).all()


def test_refine_needs_its_inputs(voc_root, tmp_path):
    with pytest.raises(StoreError, match=r"reads the 'grabcut' store.*run `pseudolabel grabcut --split train`"):
        run("refine", RefineConfig(), open_dataset(voc_root), "train", tmp_path, progress=False)


def test_proposal_config_keeps_every_parameter():
    import dataclasses
    assert "from_mcg" in dataclasses.asdict(ProposalConfig())


def test_packed_membership_round_trips_exactly():
    import scipy.sparse as sparse

    from pseudolabel.store.entry import pack_membership, unpack_membership
    rng = np.random.default_rng(0)
    for P, n, density in ((1, 1, 1.0), (7, 9, 0.5), (300, 1021, 0.05), (4, 0, 0.0), (0, 5, 0.0)):
        m = sparse.random(P, n, density=density, format="csr", random_state=rng).astype(bool)
        bits = pack_membership(m)
        assert bits.shape == (P, (n + 7) // 8) and bits.dtype == np.uint8
        back = unpack_membership(bits, n)
        assert back.shape == (P, n) and (back != m).nnz == 0


def test_proposal_stores_of_format_1_and_2_give_the_same_refine_store(voc_root, tmp_path):
    """Format 2 keeps the membership as packed bits; a format-1 store (CSR indptr / indices, as
    0.1.0 wrote it) of the same proposals is read to the same matrix, so refine is unchanged."""
    import h5py

    from .conftest import store_contents
    ds = open_dataset(voc_root)
    for stage in ("grabcut", "proposals"):
        run(stage, None, ds, "train", tmp_path, progress=False)
    refined = run("refine", None, ds, "train", tmp_path, progress=False).store
    images = {k: v for k, v in store_contents(refined).items() if k.startswith("images")}
    props = tmp_path / "VOC2012" / "train" / "proposals.h5"
    store = ProposalStore(props)
    assert store.meta["format_version"] == 3
    before = {i: store[i].membership for i in store.ids}
    store.close()
    with h5py.File(props, "r+") as f:                 # rewrite it as format 1 in place (no checksums)
        f.attrs["format_version"] = 1
        del f.attrs["index_crc32"], f["index/checksum"]
        for image_id, m in before.items():
            g = f["images"][image_id]
            del g["membership"]
            g.create_dataset("indptr", data=m.indptr.astype(np.int64))
            g.create_dataset("indices", data=m.indices.astype(np.int32))
    old = ProposalStore(props)
    assert all((old[i].membership != before[i]).nnz == 0 for i in old.ids)
    again = run("refine", None, ds, "train", tmp_path, RunOptions(force=True), progress=False).store
    assert {k: v for k, v in store_contents(again).items() if k.startswith("images")} == images
