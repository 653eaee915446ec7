"""Recipes: a whole pipeline in one TOML file, run by ``pseudolabel run``.

A recipe names the split, the steps in order and each stage's configuration::

    name = "box2seg"
    description = "GrabCut masks with filling rates, as palette PNGs"
    split = "train"            # optional; --split overrides
    jobs = 2                   # optional run options for every step: jobs, on_error, device
    # data_root = "../VOC2012" # optional, relative to this file; --data-root / PSEUDOLABEL_DATA override

    [[step]]
    stage = "grabcut"          # any stage; its [step.config] keys are that stage's options
    on_error = "skip"          # optional run options of this step: jobs, on_error, device, gpus
    [step.config]
    iterations = 5

    [[step]]
    export = "grabcut"         # that stage's current store, as palette PNGs
    # format = "png"           # or "coco" (one JSON, RLE masks) or "yolo" (polygons)
    # out = "exports/box2seg"  # under the output root (or `run --exports DIR`); default
                               # <cache>/<dataset>/<split>/export/<stage>[-<format>]
    # instances = true

Run options (``runner.options.RunOptions``) come in layers, later ones winning: the defaults, the
recipe's top level, the step, then what the command line gives (``pseudolabel run --jobs 4``).
``device`` and ``gpus`` apply to stages that run a network (a step of another stage that sets
them is refused); ``gpus = "0,1"`` runs one process per device. Stages are cached by configuration
(``docs/CACHE.md``): a step whose store exists for the same configuration and inputs has nothing
to do, so rerunning a recipe redoes only what changed. An export step is skipped when its folder
already holds the export of the same store. Everything is checked before any step runs; a bad
recipe is a :class:`ConfigError` naming the file, the step and the key.

The recipes shipped with the package (``pseudolabel/pipelines/*.toml``, also ``pipelines/`` in a
checkout) are found by name from any folder: ``pseudolabel run box2seg``; ``pseudolabel run
--list`` shows them.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import config_from_mapping
from ..core.errors import ConfigError
from ..runner.options import RunOptions, fields_for, spelled

SHIPPED = Path(__file__).resolve().parents[1] / "pipelines"
"""Where the recipes installed with the package are."""
RECIPE_OPTIONS = {f.name for f in fields_for("recipe")}
STEP_OPTIONS = {f.name for f in fields_for("step")}
TOP_KEYS = {"name", "description", "split", "data_root", "step"} | RECIPE_OPTIONS
STAGE_KEYS = {"stage", "config"} | STEP_OPTIONS
EXPORT_KEYS = {"export", "out", "instances", "format"}


@dataclass(frozen=True)
class Step:
    kind: str                                   # "stage" | "export"
    stage: str
    config: Any = None                          # the stage's config dataclass (stage steps)
    options: dict[str, Any] = field(default_factory=dict)   # stage steps: this step's run options
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
    split: str | None = None                    # None: the data's default (train, or its only split)
    data_root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)   # run options for every step
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def step_options(self, step: Step, given: dict[str, Any] | None = None) -> RunOptions:
        """The run options of a stage step: the recipe's, the step's, then ``given`` (the command
        line's, ``None`` for what it leaves to the recipe). Inherited ``device`` and ``gpus`` apply
        to stages that run a network only, and the command line's dask backend to steps without
        ``gpus`` (whose processes are local); the step's own must fit its stage."""
        from ..stages import get_stage
        stage = get_stage(step.stage)
        inherited = [dict(self.options), dict(given or {})]
        if not stage.uses_device:
            inherited = [{k: v for k, v in layer.items() if k not in ("device", "gpus")} for layer in inherited]
        if step.options.get("gpus"):
            inherited[1] = {k: v for k, v in inherited[1].items() if k not in ("backend", "scheduler")}
        where = f"{self.path}: step {self.steps.index(step) + 1} (stage {step.stage}): "
        options = RunOptions.from_layers(inherited[0], step.options, inherited[1], where=where, style="recipe")
        try:
            return options.for_stage(stage)
        except ConfigError as exc:
            raise ConfigError(f"{where}{spelled(str(exc), 'recipe')}") from None


def stage_config(stage_name: str, values: dict[str, Any], where: str):
    """A stage's config dataclass from recipe values (``config.config_from_mapping``: unknown keys
    and bad values named, after ``where``)."""
    from ..stages import get_stage
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


# ------------------------------------------------------------------------------ finding recipes
def shipped_recipes() -> list[tuple[str, str, Path]]:
    """``(name, description, path)`` of every recipe installed with the package, by name."""
    out = []
    for path in sorted(SHIPPED.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            data = {}
        out.append((path.stem, str(data.get("description", "")), path))
    return out


def find_recipe(name_or_path: str | os.PathLike) -> Path:
    """A recipe file: ``name_or_path`` itself when it is a file, else the shipped recipe of that
    name (``box2seg`` or ``box2seg.toml``); a ConfigError listing the shipped names otherwise."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.name[:-5] if path.name.endswith(".toml") else path.name
    if str(path) in (name, f"{name}.toml") and (SHIPPED / f"{name}.toml").is_file():
        return SHIPPED / f"{name}.toml"
    names = ", ".join(n for n, _, _ in shipped_recipes())
    raise ConfigError(f"{path}: no such recipe file, and no shipped recipe of that name (shipped: {names}; "
                      f"`pseudolabel run --list` describes them)")


# ------------------------------------------------------------------------------------ loading
def load_recipe(path: str | os.PathLike, overrides: dict[str, dict[str, Any]] | None = None) -> Recipe:
    """Read and check a recipe (a path, or the name of a shipped one); ``overrides`` (from
    :func:`parse_set`) replace config values of the stage steps they name."""
    path = find_recipe(path)
    try:
        data = tomllib.loads(path.read_text())
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
    steps = tuple(_step(raw, f"{path}: step {n}", overrides) for n, raw in enumerate(steps_in, start=1))
    if overrides:
        raise ConfigError(f"--set names stage(s) {', '.join(sorted(overrides))} that {path} does not run")
    root = data.get("data_root")
    if root is not None:
        root = str((path.parent / root).resolve())
    options = {k: data[k] for k in RECIPE_OPTIONS if k in data}
    RunOptions.from_layers(options, where=f"{path}: ", style="recipe")     # checked now, used per step
    recipe = Recipe(path=path, name=str(data.get("name", path.stem)), description=str(data.get("description", "")),
                    split=str(data["split"]) if "split" in data else None, data_root=root, options=options,
                    steps=steps)
    for step in steps:
        if step.kind == "stage":
            recipe.step_options(step)
    return recipe


def _step(raw: Any, where: str, overrides: dict[str, dict[str, Any]]) -> Step:
    """One ``[[step]]`` table, checked; a stage step takes (and removes) its ``--set`` overrides."""
    from ..stages import STAGES
    if not isinstance(raw, dict) or ("stage" in raw) == ("export" in raw):
        raise ConfigError(f"{where}: a step has exactly one of stage = \"...\" or export = \"...\"")
    kind, keys = ("stage", STAGE_KEYS) if "stage" in raw else ("export", EXPORT_KEYS)
    bad = set(raw) - keys
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(bad))} for a {kind} step; "
                          f"known: {', '.join(sorted(keys))}")
    name = raw[kind]
    if not isinstance(name, str) or name not in STAGES:
        raise ConfigError(f"{where}: unknown stage {name!r}; known: {', '.join(STAGES)}")
    where = f"{where} ({kind} {name})"
    if kind == "stage":
        config = raw.get("config", {})
        if not isinstance(config, dict):
            raise ConfigError(f"{where}: config must be a table ([step.config]), got {config!r}")
        values = {**config, **overrides.pop(name, {})}
        return Step("stage", name, stage_config(name, values, where),
                    options={k: raw[k] for k in STEP_OPTIONS if k in raw})
    if STAGES[name].output != "labels":
        raise ConfigError(f"{where}: only label stores can be exported; {name!r} makes {STAGES[name].output}")
    from ..export import FORMATS
    fmt = raw.get("format", "png")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = raw.get("out")
    if out is not None and (not isinstance(out, str) or not out.strip() or Path(out).is_absolute()
                            or ".." in Path(out).parts or "\0" in out):
        raise ConfigError(f"{where}: out must be a relative folder without '..' (recipe outputs stay under the "
                          f"output root, or under `pseudolabel run --exports DIR`), got {out!r}")
    return Step("export", name, out=out, instances=bool(raw.get("instances", True)), fmt=fmt)
