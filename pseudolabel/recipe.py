"""Recipes: a whole pipeline in one TOML file (``pipelines/*.toml``), run by ``pseudolabel run``.

A recipe names the split, the steps in order and each stage's configuration::

    name = "box2seg"
    description = "GrabCut masks with filling rates, as palette PNGs"
    split = "train"            # optional; --split overrides
    jobs = 2                   # optional; --jobs overrides
    # data_root = "../VOC2012" # optional, relative to this file; --data-root / PSEUDOLABEL_DATA override

    [[step]]
    stage = "grabcut"          # any stage; its [step.config] keys are that stage's options
    [step.config]
    iterations = 5

    [[step]]
    export = "grabcut"         # that stage's current store, as palette PNGs
    # format = "png"           # or "coco" (one JSON, RLE masks) or "yolo" (polygons)
    # out = "exports/box2seg"  # default <cache>/<dataset>/<split>/export/<stage>[-<format>]
    # instances = true

A stage step that runs a network may set ``device = "cuda"`` (as ``--device``; ``auto`` by default)
or ``gpus = "0,1"`` (one process per device, as ``--gpus``); recipe ``jobs`` apply to CPU stages,
never two detectors on one device. Stages are
cached by configuration (``docs/CACHE.md``): a step whose store exists for the same
configuration and inputs has nothing to do, so rerunning a recipe redoes only what changed.
An export step is skipped when its folder already holds the export of the same store.
Everything is checked before any step runs; a bad recipe is a :class:`ConfigError` naming the
file, the step and the key.
"""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import config_from_mapping
from .errors import ConfigError

TOP_KEYS = {"name", "description", "split", "jobs", "data_root", "step"}
STAGE_KEYS = {"stage", "config", "gpus", "device", "on_error"}
EXPORT_KEYS = {"export", "out", "instances", "format"}


@dataclass(frozen=True)
class Step:
    kind: str                                   # "stage" | "export"
    stage: str
    config: Any = None                          # the stage's config dataclass (stage steps)
    gpus: tuple[str, ...] = ()
    device: str = "auto"                        # stages that run a network (--device)
    out: str | None = None                      # export steps
    instances: bool = True
    fmt: str = "png"                            # export steps: png | coco | yolo

    def describe(self) -> str:
        if self.kind == "stage":
            return self.stage
        return f"export {self.stage}" + ("" if self.fmt == "png" else f" ({self.fmt})")


@dataclass(frozen=True)
class Recipe:
    path: Path
    name: str
    description: str = ""
    split: str = "train"
    jobs: int = 1
    data_root: str | None = None
    steps: tuple[Step, ...] = field(default_factory=tuple)


def stage_config(stage_name: str, values: dict[str, Any], where: str):
    """A stage's config dataclass from recipe values (``config.config_from_mapping``: unknown keys
    and bad values named, after ``where``)."""
    from .stages import get_stage
    return config_from_mapping(get_stage(stage_name).config_class, values, where=f"{where}: ",
                               what=f"stage {stage_name!r}")


def parse_set(assignments: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """``--set stage.key=value`` overrides; values are TOML (``3``, ``0.5``, ``true``, ``[1, 2]``),
    anything else a string."""
    out: dict[str, dict[str, Any]] = {}
    for item in assignments:
        target, eq, text = item.partition("=")
        stage, dot, key = target.strip().partition(".")
        if not eq or not dot or not stage or not key:
            raise ConfigError(f"--set {item!r}: expected STAGE.OPTION=VALUE, e.g. grabcut.iterations=3")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        out.setdefault(stage, {})[key.strip()] = value
    return out


def load_recipe(path: str | os.PathLike, overrides: dict[str, dict[str, Any]] | None = None) -> Recipe:
    """Read and check a recipe; ``overrides`` (from :func:`parse_set`) replace config values of
    the stage steps they name."""
    from .stages import STAGES
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recipe (shipped recipes are in pipelines/)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the recipe ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(TOP_KEYS))}")
    steps_in = data.get("step", [])
    if not isinstance(steps_in, list) or not steps_in:
        raise ConfigError(f"{path}: no steps; add [[step]] tables (stage = \"...\" or export = \"...\")")
    overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    steps = []
    for n, raw in enumerate(steps_in, start=1):
        where = f"{path}: step {n}"
        if not isinstance(raw, dict) or ("stage" in raw) == ("export" in raw):
            raise ConfigError(f"{where}: a step has exactly one of stage = \"...\" or export = \"...\"")
        kind, keys = ("stage", STAGE_KEYS) if "stage" in raw else ("export", EXPORT_KEYS)
        bad = set(raw) - keys
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(bad))} for a {kind} step; "
                              f"known: {', '.join(sorted(keys))}")
        name = raw[kind]
        if name not in STAGES:
            raise ConfigError(f"{where}: unknown stage {name!r}; known: {', '.join(STAGES)}")
        where = f"{where} ({kind} {name})"
        if kind == "stage":
            values = dict(raw.get("config", {}))
            values.update(overrides.pop(name, {}))
            gpus, device = raw.get("gpus", ""), raw.get("device", "auto")
            if not isinstance(gpus, str):
                raise ConfigError(f"{where}: gpus must be a string such as \"0,1\", got {gpus!r}")
            if not isinstance(device, str):
                raise ConfigError(f"{where}: device must be a string (auto, cpu, cuda, cuda:N), got {device!r}")
            if (gpus or device != "auto") and not STAGES[name].uses_device:
                raise ConfigError(f"{where}: gpus and device are for stages that run a network; {name!r} "
                                  f"runs on --jobs CPU workers")
            steps.append(Step("stage", name, stage_config(name, values, where), device=device,
                              gpus=tuple(g.strip() for g in gpus.split(",") if g.strip())))
        else:
            if STAGES[name].output != "labels":
                raise ConfigError(f"{where}: only label stores can be exported; {name!r} makes {STAGES[name].output}")
            from .export import FORMATS
            fmt = raw.get("format", "png")
            if fmt not in FORMATS:
                raise ConfigError(f"{where}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
            steps.append(Step("export", name, out=raw.get("out"), instances=bool(raw.get("instances", True)),
                              fmt=fmt))
    if overrides:
        raise ConfigError(f"--set names stage(s) {', '.join(sorted(overrides))} that {path} does not run")
    root = data.get("data_root")
    if root is not None:
        root = str((path.parent / root).resolve())
    jobs = data.get("jobs", 1)
    if not isinstance(jobs, int) or jobs < 0:
        raise ConfigError(f"{path}: jobs must be an integer >= 0, got {jobs!r}")
    return Recipe(path=path, name=str(data.get("name", path.stem)), description=str(data.get("description", "")),
                  split=str(data.get("split", "train")), jobs=jobs, data_root=root, steps=tuple(steps))


# ----------------------------------------------------------------------------------------- run
EXPORT_MANIFEST = "export.json"


@dataclass(frozen=True)
class StepResult:
    """What one step did: ``skipped`` when its output was up to date."""

    step: str
    skipped: bool
    store: str | None = None
    line: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = {"step": self.step, "skipped": self.skipped}
        if self.store is not None:
            out["store"] = self.store
        return out


def _export(step: Step, dataset, split: str, cache, force: bool, progress: bool) -> StepResult:
    from .export import export_store
    from .layout import OutputRoot
    from .store import LabelStore
    root = OutputRoot(cache)
    current = root.current(dataset.name, split, step.stage)
    if not current.exists():
        raise ConfigError(f"export {step.stage}: {current} does not exist; put a `stage = \"{step.stage}\"` "
                          f"step before it")
    store = LabelStore(current)
    out = Path(step.out) if step.out else root.export_dir(dataset.name, split, step.stage, step.fmt)
    identity = {"store": str(current.resolve()), "cache_key": store.meta.get("cache_key", ""),
                "completed": store.meta.get("completed", ""), "instances": step.instances, "format": step.fmt}
    manifest = out / EXPORT_MANIFEST
    if not force and manifest.exists():
        try:
            if json.loads(manifest.read_text()) == identity:
                return StepResult(step.describe(), True, line=f"{step.describe()}: nothing to do, {out} holds "
                                                              f"this store's export")
        except ValueError:
            pass
    manifest.unlink(missing_ok=True)
    _, line = export_store(store, out, step.fmt, split=split, instances=step.instances, progress=progress)
    manifest.write_text(json.dumps(identity, indent=2) + "\n")
    return StepResult(step.describe(), False, line=f"{step.describe()}: {line}")


def _stage_step(step: Step, dataset, split: str, cache, *, jobs: int, force: bool, on_error: str, progress: bool,
                log, backend: str, retry_failed: bool) -> StepResult:
    from .runner import run_on_devices, run_stage
    if step.gpus:
        summary = run_on_devices(step.stage, step.config, dataset, split, cache, list(step.gpus), jobs=jobs,
                                 force=force, on_error=on_error, progress=progress, log=log,
                                 retry_failed=retry_failed)
    else:
        summary = run_stage(step.stage, dataset, split, cache, config=step.config, jobs=jobs, force=force,
                            on_error=on_error, progress=progress, log=log, backend=backend,
                            retry_failed=retry_failed, device=step.device)
    for line in summary.lines():
        log(line)
    return StepResult(step.describe(), summary.nothing_to_do, store=str(summary.store))


def run_recipe(recipe: Recipe, *, data_root: str | None, cache: str | os.PathLike, split: str | None = None,
               jobs: int | None = None, force: bool = False, on_error: str = "fail", progress: bool = True,
               log: Callable[[str], None] = lambda s: None, backend: str = "loky",
               retry_failed: bool = False) -> list[StepResult]:
    """Run the steps in order; returns what each step did (ran, or skipped as up to date).
    ``retry_failed``: stage steps with a finished store redo only its failed images (see
    ``run_stage``); exports of stores that changed are redone.
    ``backend="dask"`` sends the images of stage steps without ``gpus`` to the dask cluster of
    the current client."""
    from .catalog import open_dataset
    from .stages import get_stage
    dataset = open_dataset(data_root or recipe.data_root)
    split = split or recipe.split
    jobs = recipe.jobs if jobs is None else jobs
    log(f"recipe {recipe.name} ({recipe.path}): {len(recipe.steps)} steps on {dataset.root} [{split}]")
    for step in recipe.steps:                # e.g. missing detector weights: before any work
        if step.kind == "stage":
            get_stage(step.stage).check(step.config)
    done = []
    for n, step in enumerate(recipe.steps, start=1):
        log(f"step {n}/{len(recipe.steps)}: {step.describe()}")
        if step.kind == "export":
            result = _export(step, dataset, split, cache, force, progress)
            log(result.line)
        else:
            result = _stage_step(step, dataset, split, cache, jobs=jobs, force=force, on_error=on_error,
                                 progress=progress, log=log, backend=backend, retry_failed=retry_failed)
        done.append(result)
    ran = [d.step for d in done if not d.skipped]
    log(f"recipe {recipe.name}: " + (f"ran {', '.join(ran)}" if ran else "nothing to do, every step is up to date"))
    return done
