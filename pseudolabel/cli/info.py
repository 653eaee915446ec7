"""``pseudolabel info``: what is inside a store."""
from __future__ import annotations

import json

import click

from ..store import StoreIndex, describe
from . import cli


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@cli.command("info")
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--failures", is_flag=True, help="List the failed images with their reasons.")
@click.option("--check", is_flag=True,
              help="Read every image once, checked against its checksum, to find damage; exit status 1 and "
                   "the damaged images named when there is any.")
def info_command(store, as_json, failures, check):
    """Schema version, provenance, done / failed / total and size on disk of STORE
    (a finished store, or one whose run is in progress or was interrupted)."""
    meta = describe(store, check=check)
    if failures and meta.get("complete"):
        meta["failures"] = StoreIndex.open(store).failed
    damaged = meta.get("damaged") or {}
    if as_json:
        click.echo(json.dumps(meta, default=str))
        if damaged:
            raise SystemExit(1)
        return
    click.echo("\n".join(_lines(meta, check)))
    if failures:
        if not meta.get("complete"):
            click.echo("failures:    known once the run is finished")
        elif not meta["failures"]:
            click.echo("failures:    no failures")
        for image_id, reason in meta["failures"].items():
            click.echo(f"failed {image_id}: {reason}")
    if damaged:
        for image_id, problem in damaged.items():
            click.echo(f"damaged {image_id}: {problem}", err=True)
        raise click.ClickException(f"{store}: {len(damaged)} of {meta['checked']} image(s) damaged "
                                   f"({', '.join(list(damaged)[:5])}{', ...' if len(damaged) > 5 else ''}); "
                                   f"rerun the stage with --force to recompute the store")


def _lines(meta: dict, check: bool) -> list[str]:
    complete = meta.get("complete")
    state = "complete" if complete else "INCOMPLETE (run in progress or interrupted; rerun to resume)"
    fmt = (f"{meta.get('format')} v{meta.get('format_version')}" if complete
           else "journal of a run in progress or interrupted (no store file yet)")
    lines = [
        f"store:       {meta['path']}",
        f"format:      {fmt} (written by pseudolabel {meta.get('package_version')})",
        f"state:       {state}",
        f"stage:       {meta.get('stage')} (revision {meta.get('stage_revision', 1)})",
        f"dataset:     {meta.get('dataset')} ({meta.get('dataset_root')}), split {meta.get('split')}",
        f"created:     {meta.get('created')}" + (f", completed {meta['completed']}" if meta.get("completed") else ""),
        f"images:      {meta.get('num_done')} done, {meta.get('num_failed')} failed, {meta.get('num_images')} total",
        f"size:        {_size(meta['size_bytes'])}",
        f"config:      {json.dumps(meta.get('config'), sort_keys=True)}",
    ]
    if meta.get("run_log"):
        runs = json.loads(meta["run_log"])
        killed = sum(r.get("end") is None for r in runs)
        hosts = sorted({r.get("host", "?") for r in runs})
        retries = sum("retry_failed" in r for r in runs)
        lines.append(f"runs:        {len(runs)} session(s)" + (f", {killed} interrupted" if killed else "")
                     + (f", {retries} retrying failed images" if retries else "") + f", on {', '.join(hosts)}")
    if check and complete:
        how = "checked against their checksums" if meta["checksums"] else \
            "read and decompressed (a format-1 store has no checksums: damage that still reads is not seen)"
        damaged = meta["damaged"]
        lines.append(f"check:       {meta['checked']} image(s) {how}: "
                     + (f"{len(damaged)} damaged" if damaged else "no damage found"))
    elif check:
        lines.append("check:       nothing to check until the run is finished")
    return lines
