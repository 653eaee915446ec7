"""`pseudolabel cache list / clean` over stores keyed by configuration."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from pseudolabel.app.cache import scan
from pseudolabel.catalog import open_dataset
from pseudolabel.core.errors import DataError
from pseudolabel.runner import run
from pseudolabel.stages import get_stage
from pseudolabel.store import LabelStore
from pseudolabel.store.journal import run_lock


@pytest.fixture
def two_configs(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    cfg = get_stage("grabcut").config_class
    old = run("grabcut", cfg(iterations=1), ds, "train", tmp_path, progress=False).store
    new = run("grabcut", cfg(iterations=2), ds, "train", tmp_path, progress=False).store
    return ds, old, new


def test_list_shows_each_configuration_and_the_current_one(invoke, two_configs, tmp_path):
    _, old, new = two_configs
    result = invoke("cache", "list", "--cache", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    entries = {e["key"]: e for e in json.loads(result.output)}
    assert set(entries) == {old.stem, new.stem}
    assert entries[new.stem]["current"] and not entries[old.stem]["current"]
    assert entries[old.stem]["done"] == 6 and json.loads(entries[old.stem]["config"])["iterations"] == 1
    text = invoke("cache", "list", "--cache", str(tmp_path)).output
    assert f"*  VOC2012/train/grabcut    {new.stem}" in text and "2 entries" in text


def test_clean_removes_superseded_stores_only(invoke, two_configs, tmp_path):
    _, old, new = two_configs
    dry = invoke("cache", "clean", "--cache", str(tmp_path), "--dry-run")
    assert dry.exit_code == 0 and f"would remove {old}" in dry.output and old.exists()
    done = invoke("cache", "clean", "--cache", str(tmp_path))
    assert f"removed {old}" in done.output and "removed 1 entries" in done.output
    assert not old.exists() and new.exists()
    assert len(LabelStore(tmp_path / "VOC2012" / "train" / "grabcut.h5")) == 6


def test_clean_partial_removes_interrupted_runs_but_never_a_live_one(invoke, voc_root, tmp_path):
    ds = open_dataset(voc_root)
    Image.new("RGB", (10, 10)).save(voc_root / "JPEGImages" / "2012_000003.jpg")
    with pytest.raises(DataError):
        run("boxes", None, ds, "train", tmp_path, progress=False)       # leaves a resumable journal
    (partial,) = [e for e in scan(tmp_path) if e.kind == "partial"]
    assert invoke("cache", "clean", "--cache", str(tmp_path)).output.strip() == "removed 0 entries, 0 B"
    with run_lock(partial.path.with_name(partial.path.name[:-len(".partial")])):
        assert scan(tmp_path)[0].in_use
        assert "removed 0 entries" in invoke("cache", "clean", "--cache", str(tmp_path), "--partial").output
    assert partial.path.exists()
    assert "removed 1 entries" in invoke("cache", "clean", "--cache", str(tmp_path), "--partial").output
    assert not partial.path.exists()


def test_clean_all_removes_links_too(invoke, two_configs, tmp_path):
    result = invoke("cache", "clean", "--cache", str(tmp_path), "--all")
    assert "removed 2 entries" in result.output and "(link)" in result.output
    assert scan(tmp_path) == [] and not (tmp_path / "VOC2012" / "train" / "grabcut.h5").is_symlink()
    assert "no stores" in invoke("cache", "list", "--cache", str(tmp_path)).output
