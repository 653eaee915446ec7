"""Stores written before the runner and store were reshaped (pseudolabel 0.1.0, the layout of
``docs/CACHE.md``) are still found by their cache keys, reused and read. The files in
``tests/data/stores-0.1.0`` were written by that version from ``make_voc_tree(n_images=4,
size=(48, 64))`` with the data root and output root below."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py

from pseudolabel.catalog import open_dataset
from pseudolabel.runner import RunOptions, run
from pseudolabel.stages import get_stage
from pseudolabel.store import LabelStore, ProposalStore

from .conftest import store_contents
from .synth import make_voc_tree

LEGACY = Path(__file__).parent / "data" / "stores-0.1.0"
OLD_ROOT, OLD_CACHE = "/tmp/legacy/LEGACY/VOC2012", "/tmp/legacy/LEGACY/cache"


def _move(src: Path, dst: Path, root: Path, cache: Path) -> None:
    """Copy a store as if it had been written with this test's data root and output root."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        f.attrs["dataset_root"] = str(root)
        f.attrs["inputs"] = f.attrs["inputs"].replace(OLD_CACHE, str(cache))
        for group in f["images"].values():
            group.attrs["image_path"] = group.attrs["image_path"].replace(OLD_ROOT, str(root))


def test_stores_of_0_1_0_are_found_reused_and_read(tmp_path):
    root = make_voc_tree(tmp_path / "VOC2012", n_images=4, size=(48, 64)).resolve()
    cache = tmp_path / "cache"
    legacy = sorted(LEGACY.rglob("*.h5"))
    assert [p.parent.name for p in legacy] == ["boxes", "fuse", "grabcut", "proposals", "refine"]
    for src in legacy:
        _move(src, cache / src.relative_to(LEGACY), root, cache)
    ds = open_dataset(root)
    fuse = get_stage("fuse").config_class(sources="grabcut,boxes")
    for stage, config in (("boxes", None), ("grabcut", None), ("fuse", fuse), ("proposals", None), ("refine", None)):
        summary = run(stage, config, ds, "train", cache, progress=False)
        old = cache / "VOC2012" / "train" / stage / next(p.name for p in legacy if p.parent.name == stage)
        assert summary.nothing_to_do and summary.store == old, summary.lines()
        assert summary.current.resolve() == old.resolve()
        if stage == "proposals":                        # format 1: CSR membership, still read
            props = ProposalStore(summary.current)[0]
            assert props.membership.shape[1] == props.superpixels.max() + 1
            continue
        store = LabelStore(summary.current, load_masks=True)
        sample = store[0]
        assert sample.label.shape == (48, 64) and sample.masks.shape[0] == len(sample.boxes)
        assert store.meta["cache_key"] == old.stem and json.loads(store.meta["run_log"])
    # refine made again today from the 0.1.0 grabcut and proposal stores: the same labels
    def images(path):         # stores of format 3 also record each photo's frame (orientation 1 here)
        return {k: ({a: x for a, x in v.items() if a not in ("orientation", "exif_orientation")}
                    if k.endswith("@attrs") else v) for k, v in store_contents(path).items() if k.startswith("images")}
    before = images(summary.store)
    run("refine", None, ds, "train", cache, RunOptions(force=True), progress=False)
    assert images(summary.store) == before


LATER_OPTIONS = {
    ("edges", "precision"): "auto", ("grabcut", "pairwise"): "colour", ("grabcut", "colour_model"): "rgb",
    ("grabcut", "init_from"): "", ("grabcut", "init_sure"): 0.9, ("grabcut", "init_probable"): 0.7,
    ("grabcut", "hed_weights"): "", ("proposals", "edges_from"): "", ("proposals", "thin_edges"): False,
    ("fuse", "rule"): "agree",
}
"""Options added after their stage's first stores (``option(since=...)``) and the default each is
left out of the cache key at. Changing one of these defaults would make every store keyed
without the option read as made with the new value (found when init_probable's default went from
0.5 to 0.7 before it shipped: a benchmark cache served the 0.5 stores as 0.7 ones)."""


def test_options_added_later_keep_the_default_their_stores_were_keyed_with():
    import dataclasses
    from pseudolabel.stages import _MODULES
    found = {(name, f.name): f.default for name in _MODULES
             for f in dataclasses.fields(get_stage(name).config_class) if f.metadata.get("since")}
    assert found == LATER_OPTIONS, (
        "an option added later changed its default (or one was added): stores keyed without it "
        "would now claim the new value; keep the default, or raise the stage's revision")
