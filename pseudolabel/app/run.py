"""``pseudolabel run``: the steps of a recipe (``app/recipe.py``) in order, each stage step through
the runner's one entry point with its run options, each export step skipped when its folder
already holds the export of the same store."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core.errors import ConfigError
from .recipe import Recipe, Step

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


def _export(step: Step, dataset, split: str, cache, exports: Path | None, force: bool,
            progress: bool) -> StepResult:
    from ..core.output_root import OutputRoot
    from ..export import export_store, up_to_date
    from ..store import LabelStore
    root = OutputRoot(cache)
    current = root.current(dataset.name, split, step.stage)
    if not current.exists():
        raise ConfigError(f"export {step.stage}: {current} does not exist; put a `stage = \"{step.stage}\"` "
                          f"step before it")
    store = LabelStore(current)
    out = (exports or root.root) / step.out if step.out else root.export_dir(dataset.name, split, step.stage, step.fmt)
    if not force and up_to_date(store, out, step.fmt, split=split, instances=step.instances):
        return StepResult(step.describe(), True, line=f"{step.describe()}: nothing to do, {out} holds this store's export")
    _, line = export_store(store, out, step.fmt, split=split, instances=step.instances, progress=progress)
    return StepResult(step.describe(), False, line=f"{step.describe()}: {line}")


def run_recipe(recipe: Recipe, dataset, *, cache: str | os.PathLike, split: str | None = None,
               options: dict[str, Any] | None = None, exports: str | os.PathLike | None = None, progress: bool = True,
               log: Callable[[str], None] = lambda s: None) -> list[StepResult]:
    """Run the steps on ``dataset`` (a ``catalog.Dataset``: the command line's data root, else the
    recipe's) in order; returns what each step did (ran, or skipped as up to date).
    ``options``: run options the command line gives (``None`` values: left to the recipe), over
    the recipe's and its steps' (:meth:`Recipe.step_options`). ``retry_failed``: stage steps with a
    finished store redo only its failed images; exports of stores that changed are redone.
    ``backend = "dask"`` sends the images of stage steps without ``gpus`` to the cluster. An export
    step's ``out`` is a folder under the output root, or under ``exports`` when given."""
    from ..runner import backend_context, run
    from ..stages import get_stage
    given = {k: v for k, v in (options or {}).items() if v is not None}
    split = split or recipe.split or dataset.default_split()
    stage_steps = {id(s): recipe.step_options(s, given) for s in recipe.steps if s.kind == "stage"}
    log(f"recipe {recipe.name} ({recipe.path}): {len(recipe.steps)} steps on {dataset.root} [{split}]")
    for step in recipe.steps:                # e.g. missing detector weights: before any work
        if step.kind == "stage":
            get_stage(step.stage).check(step.config)
    done = []
    with backend_context(given.get("backend", "loky"), given.get("scheduler")):
        for n, step in enumerate(recipe.steps, start=1):
            log(f"step {n}/{len(recipe.steps)}: {step.describe()}")
            if step.kind == "export":
                result = _export(step, dataset, split, cache, Path(exports) if exports else None,
                                 bool(given.get("force")), progress)
                log(result.line)
            else:
                summary = run(step.stage, step.config, dataset, split, cache, stage_steps[id(step)],
                              progress=progress, log=log)
                for line in summary.lines():
                    log(line)
                result = StepResult(step.describe(), summary.nothing_to_do, store=str(summary.store))
            done.append(result)
    ran = [d.step for d in done if not d.skipped]
    log(f"recipe {recipe.name}: " + (f"ran {', '.join(ran)}" if ran else "nothing to do, every step is up to date"))
    return done
