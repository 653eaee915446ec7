"""Command-line interface: one click group, one module per command. Commands parse options
and call one library function; they hold no algorithm."""
from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import PseudolabelError


class Group(click.Group):
    """Reports the package's own errors as one line (``Error: <file>: <problem>``), exit 1,
    without a traceback; Ctrl-C says how to resume. Stage commands are made on demand from
    the stage registry (see :mod:`.stages`)."""

    LAZY = {"train-detector": "train_detector"}
    """Commands whose module imports torch: loaded only when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from ..stages import STAGES
        return sorted({*super().list_commands(ctx), *STAGES, *self.LAZY})

    def get_command(self, ctx: click.Context, name: str):
        command = super().get_command(ctx, name)
        if command is None:
            from ..stages import STAGES
            if name in STAGES:
                from .stages import make_command
                command = make_command(STAGES[name])
                self.add_command(command)
            elif name in self.LAZY:
                import importlib
                importlib.import_module(f"{__name__}.{self.LAZY[name]}")
                command = super().get_command(ctx, name)
        return command

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PseudolabelError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted: finished images are kept; rerun the same command to resume",
                       err=True)
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="pseudolabel")
@click.option("-v", "--verbose", count=True, help="More messages (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and requested output; no progress.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Turn PASCAL VOC 2012 / SBD box annotations into pseudo segmentation labels.

    \b
    Stages write HDF5 label stores under the output root (--cache, default ./cache):
      <cache>/<dataset>/<split>/<stage>.h5   (schema: docs/STORE.md; a link to the
      store of the stage's last configuration: docs/CACHE.md, `pseudolabel cache list`)
    Typical use:
      pseudolabel boxes --data-root VOC2012 --split train
      pseudolabel evaluate --data-root VOC2012 --stage boxes --split train
      pseudolabel export --data-root VOC2012 --stage boxes --split train --format png
      pseudolabel run pipelines/box2seg.toml --data-root VOC2012   (a whole recipe)
    Try `pseudolabel demo` first: it needs no dataset.
    """
    ctx.obj = {"verbosity": -1 if quiet else verbose}


def main() -> None:
    cli(prog_name="pseudolabel")


from . import cache, demo, evaluate, export, info, proposals, run, stages  # noqa: E402,F401  (registers the commands)
