"""Planning a run: what is done, what is left to do, and in which units.

Everything that decides *which* images a run processes lives here, so the run itself is one
path: a shard keeps images I, I+N, ...; a finished store means nothing to do, or with
``retry_failed`` only its failed images; an interrupted run's journal means only its unfinished
images; annotation problems are known before any work; a stage that batches same-size images
gets groups formed over the whole split, so a resumed run regroups the same way.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import StoreError
from ..core.output_root import journal_dir
from ..core.records import BadRecord, ImageRecord
from ..stages import Stage
from ..store.index import StoreIndex
from ..store.journal import Journal
from .identity import Target, differences


@dataclass
class Plan:
    target: Target
    ids: list[str]                                   # this run's images, split order
    want: dict[str, Any]                             # the identity attributes of the store to write
    units: list[tuple[ImageRecord, ...]] = field(default_factory=list)   # work left, split order
    batched: bool = False                            # units go through the stage's process_batch
    bad: list[BadRecord] = field(default_factory=list)   # annotation problems among the images left
    previous: StoreIndex | None = None               # retry: the finished store whose done images stay
    resumed: int = 0                                 # images an interrupted run finished
    retried: int = 0                                 # failed images a retry sets out to redo
    dropped: dict[str, str] = field(default_factory=dict)   # damaged journal files removed -> problem
    nothing_to_do: bool = False
    done: int = 0                                    # of the finished store, when there is one
    failed: int = 0

    @property
    def journal(self) -> Journal:
        return Journal(journal_dir(self.target.store))

    @property
    def objects(self) -> int:
        return sum(len(r.objects) for unit in self.units for r in unit)


def image_groups(records: list, size: int) -> list[list]:
    """Consecutive runs (split order) of at most ``size`` records whose images have the same
    size. Formed over the whole split (before skipping finished images), so a resumed run
    puts every remaining image in the group it had in the first run."""
    groups: list[list] = []
    for r in records:
        if groups and len(groups[-1]) < size and (groups[-1][0].width, groups[-1][0].height) == (r.width, r.height):
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def make_plan(stage: Stage, config: Any, target: Target, records: list, *, shard: tuple[int, int] | None = None,
              force: bool = False, retry_failed: bool = False) -> Plan:
    """The plan of a run over the split's ``records``. ``force`` first discards this
    configuration's store and interrupted run. Raises StoreError when what is on disk was made
    from something else (another configuration, dataset, upstream store or image list)."""
    if shard is not None:
        records = records[shard[0]::shard[1]]
    ids = [r.image_id for r in records]
    plan = Plan(target=target, ids=ids, want=target.identity.attrs())
    store, journal = target.store, plan.journal
    if force:
        journal.remove()
        store.unlink(missing_ok=True)
    if store.exists():
        _finished_store(plan, retry_failed)
        if plan.nothing_to_do:
            return plan
    _check_journal(plan)
    finished = journal.finished()
    if plan.previous is not None:    # a retry redoes what failed before and an interrupted retry left
        kept = set(plan.previous.done_ids)
        finished = {i: "done" for i in ids if i in kept or finished.get(i) == "done"}
        plan.resumed = sum(i not in kept for i in finished)
    else:
        plan.resumed = sum(i in finished for i in ids)
    todo = {i for i in ids if i not in finished}
    plan.bad = [r for r in records if isinstance(r, BadRecord) and r.image_id in todo]
    good = [r for r in records if isinstance(r, ImageRecord)]
    size = stage.batch_images(config) if stage.process_batch is not None else 1
    plan.batched = size > 1
    groups = image_groups(good, size) if plan.batched else [[r] for r in good]
    plan.units = [unit for unit in (tuple(r for r in g if r.image_id in todo) for g in groups) if unit]
    return plan


def _finished_store(plan: Plan, retry_failed: bool) -> None:
    """A finished store of this configuration: nothing to do, or (retry) its failed images."""
    store = plan.target.store
    try:
        have = StoreIndex.open(store)
    except StoreError as exc:
        raise StoreError(f"{exc}; rerun with --force to recompute it") from None
    diff = differences(have.meta, plan.want, same_upstream_config=retry_failed)
    if have.ids != plan.ids:
        diff.append("image ids")
    if diff:
        advice = ("use another --cache to keep both, or --force to overwrite it" if "dataset" in diff
                  else "use --force to overwrite it")
        raise StoreError(f"{store} already exists but was made with a different {', '.join(diff)}"
                         + (f" ({have.meta.get('dataset_root')}, not {plan.want['dataset_root']})" if "dataset" in diff
                            else "") + f"; {advice}")
    plan.done, plan.failed = have.num_done, have.num_failed
    if not (retry_failed and have.num_failed):
        plan.nothing_to_do = True
        return
    plan.previous = have
    plan.retried = have.num_failed


def _check_journal(plan: Plan) -> None:
    """An interrupted run's journal: of this very run (or a StoreError), its damaged entries
    dropped so that their images are redone (the rest kept). A damaged manifest is dropped too
    and written again when the run starts: the journal's folder is named by the cache key, so
    its entries are of this configuration."""
    journal = plan.journal
    if not journal.exists():
        return
    try:
        manifest = journal.manifest()
    except StoreError as exc:
        plan.dropped["manifest.json"] = str(exc).split(": ", 1)[-1]
        (journal.dir / "manifest.json").unlink(missing_ok=True)
        plan.dropped.update(journal.drop_damaged())
        return
    plan.dropped.update(journal.drop_damaged())
    diff = differences(manifest, plan.want, same_upstream_config=plan.previous is not None)
    if manifest.get("ids") != plan.ids:
        diff.append("image ids")
    if diff:
        raise StoreError(f"{journal.dir} holds an interrupted run with a different {', '.join(diff)}; "
                         f"use --force to start over")


def previous_run_log(plan: Plan) -> list[dict[str, Any]]:
    """The sessions recorded in the store a retry rewrites (empty otherwise)."""
    return json.loads(plan.previous.meta.get("run_log", "[]")) if plan.previous is not None else []
