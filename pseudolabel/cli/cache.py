"""``pseudolabel cache list`` and ``pseudolabel cache clean``: the stores under an output root."""
from __future__ import annotations

import json

import click

from . import cli
from .common import cache_option
from .info import _size


@cli.group("cache")
def cache_group():
    """The stores under the output root: one per stage configuration (layout: docs/CACHE.md)."""


@cache_group.command("list")
@cache_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
def cache_list(cache, as_json):
    """Every store, shard and interrupted run, with its key, state, size and the options of its
    configuration that differ from the stage's defaults; '*' marks the current store of a stage
    (what <stage>.h5 points at)."""
    from ..app.cache import scan
    entries = scan(cache)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    if not entries:
        click.echo(f"{cache}: no stores")
        return
    for e in entries:
        state = {"partial": "interrupted run (resumable)", "shard": f"shard, {e.done} done"}.get(
            e.kind, f"{e.done} done, {e.failed} failed of {e.images}, {e.completed}")
        flags = ("*" if e.current else " ") + ("L" if e.in_use else " ")
        click.echo(f"{flags} {e.dataset}/{e.split}/{e.stage:<10} {e.key:<12} {_size(e.bytes):>10}  {state}"
                   + (f"  {_options(e.options)}" if e.options is not None else ""))
    click.echo(f"{len(entries)} entries, {_size(sum(e.bytes for e in entries))}; * current, L in use by a run")


def _options(options: dict) -> str:
    """``--iterations 5 --pairwise edges``, or ``(defaults)``."""
    if not options:
        return "(defaults)"
    def one(key, value):
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            return flag if value else f"--no-{flag[2:]}"
        return f"{flag} {value if isinstance(value, str) else json.dumps(value)}"
    return " ".join(one(k, v) for k, v in options.items())


@cache_group.command("clean")
@cache_option
@click.option("--stage", default=None, help="Only this stage's stores.")
@click.option("--partial", is_flag=True, help="Also interrupted runs and shard stores.")
@click.option("--all", "everything", is_flag=True, help="Everything, current stores and links included.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
def cache_clean(cache, stage, partial, everything, dry_run):
    """Remove stores of configurations that are no longer current (by default), and more on
    request. Stores a live run is writing are never touched."""
    from ..app.cache import clean
    removed, links = clean(cache, everything=everything, partial=partial, stage=stage, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for e in removed:
        click.echo(f"{verb} {e.path} ({e.kind}, {_size(e.bytes)})")
    for link in links:
        click.echo(f"{verb} {link} (link)")
    click.echo(f"{verb} {len(removed)} entries, {_size(sum(e.bytes for e in removed))}")
