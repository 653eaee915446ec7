"""Recipes (pipelines/*.toml) and `pseudolabel run`: skip what is up to date, rerun what changed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pseudolabel.core.errors import ConfigError
from pseudolabel.app.recipe import load_recipe, parse_set

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"

THREE = """
name = "three"
split = "train"

[[step]]
stage = "boxes"

[[step]]
stage = "grabcut"
[step.config]
iterations = 1

[[step]]
stage = "fuse"
[step.config]
sources = "grabcut,boxes"

[[step]]
export = "fuse"
"""


def ran(output: str) -> list[str]:
    return [s["step"] for s in json.loads(output[output.index("[\n  {"):]) if not s["skipped"]]


@pytest.mark.parametrize("name", ["box2seg", "bbam", "sdi", "sdi_plain", "grabcut_plus", "sam", "isnet_plus"])
def test_shipped_recipes_load(name):
    recipe = load_recipe(PIPELINES / f"{name}.toml")
    assert recipe.name == name and recipe.steps[-1].kind == "export"


def test_sdi_recipe_end_to_end(invoke, voc_root, tmp_path, fake_weights):
    """M∩G+ through the shipped recipe (HED with random weights: the steps, not the quality)."""
    args = ["run", PIPELINES / "sdi.toml", "--data-root", voc_root, "--cache", tmp_path / "c", "--json",
            "--set", f"edges.weights='{fake_weights[0]}'"]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert ran(first.output) == ["edges", "grabcut", "proposals", "refine", "fuse", "export fuse"]
    from pseudolabel.store import LabelStore
    fused = LabelStore(tmp_path / "c" / "VOC2012" / "train" / "fuse.h5")
    assert fused.config["rule"] == "intersect" and len(fused) == 6


def test_box2seg_recipe_end_to_end_then_nothing_to_do(invoke, voc_root, tmp_path):
    args = ["run", PIPELINES / "box2seg.toml", "--data-root", voc_root, "--cache", tmp_path / "c", "--json"]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert ran(first.output) == ["grabcut", "export grabcut"]
    pngs = sorted((tmp_path / "c" / "VOC2012" / "train" / "export" / "grabcut" / "SegmentationClass").glob("*.png"))
    assert len(pngs) == 6
    again = invoke(*args)
    assert ran(again.output) == [] and "nothing to do, every step is up to date" in again.output


def test_a_changed_option_reruns_only_the_steps_it_affects(invoke, voc_root, tmp_path):
    recipe = tmp_path / "three.toml"
    recipe.write_text(THREE)
    args = ["run", recipe, "--data-root", voc_root, "--cache", tmp_path / "c", "--json"]
    assert ran(invoke(*args).output) == ["boxes", "grabcut", "fuse", "export fuse"]
    changed = invoke(*args, "--set", "grabcut.iterations=2")
    assert ran(changed.output) == ["grabcut", "fuse", "export fuse"]        # boxes untouched
    back = invoke(*args)                                                    # the first configuration again
    assert ran(back.output) == ["export fuse"]                              # stores reused from the cache
    assert ran(invoke(*args, "--force").output) == ["boxes", "grabcut", "fuse", "export fuse"]


def test_retry_failed_redoes_failed_images_through_the_recipe(invoke, voc_root, tmp_path):
    recipe = tmp_path / "three.toml"
    recipe.write_text(THREE)
    image = voc_root / "JPEGImages" / "2012_000002.jpg"
    good = image.read_bytes()
    image.write_bytes(b"junk")
    args = ["run", recipe, "--data-root", voc_root, "--cache", tmp_path / "c", "--json"]
    assert ran(invoke(*args, "--on-error", "skip").output) == ["boxes", "grabcut", "fuse", "export fuse"]
    pngs = tmp_path / "c" / "VOC2012" / "train" / "export" / "fuse" / "SegmentationClass"
    assert len(list(pngs.glob("*.png"))) == 5
    image.write_bytes(good)
    assert ran(invoke(*args).output) == []                      # a plain rerun keeps the failures
    retry = invoke(*args, "--retry-failed")
    assert ran(retry.output) == ["boxes", "grabcut", "fuse", "export fuse"], retry.output
    assert len(list(pngs.glob("*.png"))) == 6
    assert ran(invoke(*args, "--retry-failed").output) == []
    both = invoke(*args, "--retry-failed", "--force")
    assert both.exit_code == 2 and "pass one" in both.output


def test_data_root_in_the_recipe_is_relative_to_it(invoke, voc_root, tmp_path):
    recipe = voc_root.parent / "r.toml"
    recipe.write_text(f'data_root = "{voc_root.name}"\n[[step]]\nstage = "boxes"\n')
    result = invoke("run", recipe, "--cache", tmp_path / "c", env={"PSEUDOLABEL_DATA": ""})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "VOC2012" / "train" / "boxes.h5").exists()


def test_missing_weights_stop_the_recipe_before_any_step(invoke, voc_root, tmp_path):
    result = invoke("run", PIPELINES / "bbam.toml", "--data-root", voc_root, "--cache", tmp_path / "c",
                    "--set", f"bbam.weights='{tmp_path / 'none.pth'}'")
    assert result.exit_code == 1 and "none.pth" in result.output and "not found" in result.output
    assert not (tmp_path / "c" / "VOC2012").exists()


@pytest.mark.parametrize("text, message", [
    ('nme = "x"\n[[step]]\nstage = "boxes"\n', "unknown key(s) nme"),
    ('name = "x"\n', "no steps"),
    ('[[step]]\nstage = "grabcutt"\n', "step 1: unknown stage 'grabcutt'"),
    ('[[step]]\nstage = "boxes"\nexport = "boxes"\n', "exactly one of stage"),
    ('[[step]]\nstage = "grabcut"\n[step.config]\niteration = 3\n', "unknown option 'iteration' for stage 'grabcut'; known:"),
    ('[[step]]\nstage = "grabcut"\n[step.config]\niterations = "five"\n', "step 1 (stage grabcut): iterations: must be a whole number, got 'five'"),
    ('[[step]]\nstage = "grabcut"\n[step.config]\niterations = -1\n', "step 1 (stage grabcut): iterations: must be >= 1, <= 100, got -1"),
    ('[[step]]\nexport = "proposals"\n', "only label stores can be exported"),
    ('[[step]]\nstage = "boxes"\ngpu = "0"\n', "unknown key(s) gpu for a stage step"),
    ('[[step]\nstage = "boxes"\n', "not valid TOML"),
    ('jobs = -2\n[[step]]\nstage = "boxes"\n', "jobs: expected 0 (all cores) or a positive whole number, got -2"),
])
def test_bad_recipes_are_named(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_set_overrides_are_checked():
    assert parse_set(["grabcut.iterations=3", "fuse.sources=grabcut,boxes"]) == {
        "grabcut": {"iterations": 3}, "fuse": {"sources": "grabcut,boxes"}}
    with pytest.raises(ConfigError, match="expected STAGE.OPTION=VALUE"):
        parse_set(["iterations=3"])
    with pytest.raises(ConfigError, match="names stage\\(s\\) bbam that .* does not run"):
        load_recipe(PIPELINES / "box2seg.toml", parse_set(["bbam.steps=3"]))


def test_missing_recipe_file_is_named(invoke, tmp_path):
    result = invoke("run", tmp_path / "nope.toml", "--data-root", tmp_path)
    assert result.exit_code == 1 and "nope.toml: no such recipe" in result.output
