"""Deterministic shards (``--shard i/n``) and their merge equal a single run."""
from __future__ import annotations

import pytest

from pseudolabel.catalog import open_dataset
from pseudolabel.core.errors import ConfigError, StoreError
from pseudolabel.core.output_root import shard_path
from pseudolabel.runner import merge_shards, resolve_target, RunOptions, run
from pseudolabel.store import LabelStore

from .conftest import store_contents


def test_shards_cover_the_split_once_and_merge_equals_a_single_run(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    whole = run("boxes", None, ds, "trainval", tmp_path / "whole", progress=False).store
    ids = []
    for i in range(3):
        s = run("boxes", None, ds, "trainval", tmp_path / "sharded", RunOptions(shard=(i, 3)), progress=False)
        assert s.store.parent.name == "boxes" and s.store.name.endswith(f".shard-{i}-of-3.h5")
        ids += LabelStore(s.store).ids
    assert sorted(ids) == sorted(r.image_id for r in ds.records("trainval"))  # each image exactly once
    merged = merge_shards("boxes", ds, "trainval", tmp_path / "sharded", 3)
    assert store_contents(merged) == store_contents(whole)
    assert not any(shard_path(merged, i, 3).exists() for i in range(3))  # shards removed after the merge


def test_merge_names_the_missing_shard_and_the_command(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    run("boxes", None, ds, "train", tmp_path, RunOptions(shard=(0, 2)), progress=False)
    with pytest.raises(StoreError, match=r"\.shard-1-of-2\.h5 not finished.*--shard I/2"):
        merge_shards("boxes", ds, "train", tmp_path, 2)


def test_merge_refuses_shards_of_different_configurations(voc_root, tmp_path):
    from pseudolabel.stages import get_stage
    ds = open_dataset(voc_root)
    cfg = get_stage("grabcut").config_class
    run("grabcut", cfg(iterations=1), ds, "train", tmp_path, RunOptions(shard=(0, 2)), progress=False)
    run("grabcut", cfg(iterations=2), ds, "train", tmp_path, RunOptions(shard=(1, 2)), progress=False)
    # each configuration has its own key: shards of two never mix
    with pytest.raises(StoreError, match="shard stores of 2 configurations .*pass --key"):
        merge_shards("grabcut", ds, "train", tmp_path, 2)
    key = resolve_target("grabcut", cfg(iterations=1), ds, "train", tmp_path).identity.key
    with pytest.raises(StoreError, match=r"shard-1-of-2\.h5 not finished"):
        merge_shards("grabcut", ds, "train", tmp_path, 2, key=key)


def test_merge_refuses_shards_of_different_data(voc_root, tmp_path):
    import shutil
    from pseudolabel.core.output_root import shard_path as sp
    ds = open_dataset(voc_root)
    a = run("boxes", None, ds, "train", tmp_path / "a", RunOptions(shard=(0, 2)), progress=False).store
    other = voc_root.parent / "elsewhere" / "VOC2012"
    shutil.copytree(voc_root, other)
    b = run("boxes", None, open_dataset(other), "train", tmp_path / "a", RunOptions(shard=(1, 2)), progress=False).store
    assert sp(a.with_name(a.name.split(".shard")[0] + ".h5"), 1, 2) == b
    with pytest.raises(StoreError, match="different dataset"):
        merge_shards("boxes", ds, "train", tmp_path / "a", 2)


def test_bad_shard_spec_is_refused(voc_root, tmp_path):
    with pytest.raises(ConfigError, match="need 0 <= I < N"):
        run("boxes", None, open_dataset(voc_root), "train", tmp_path, RunOptions(shard=(2, 2)), progress=False)
