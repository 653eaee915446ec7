"""Command-line interface: one click group, one module per command. Commands parse options
and call one library function; they hold no algorithm."""
from __future__ import annotations

import sys

import click

from .. import __version__
from ..core.errors import PseudolabelError


class Group(click.Group):
    """Reports the package's own errors, and the system's about files (a folder that cannot be
    written), as one line (``Error: <file>: <problem>``), exit 1, without a traceback; Ctrl-C says how to resume. Stage commands are made on demand from
    the stage registry (see :mod:`.stages`)."""

    LAZY = {"train-detector": "train_detector"}
    """Commands whose module imports torch: loaded only when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from ..stages import STAGES
        return sorted({*super().list_commands(ctx), *STAGES, *self.LAZY})

    def get_command(self, ctx: click.Context, name: str):
        command = _with_verbosity(self._get_command(ctx, name))
        return command

    def _get_command(self, ctx: click.Context, name: str):
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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help`` without building the commands that import torch (every
        stage's, ``train-detector``): those are described from their module's docstring."""
        from ..stages import STAGES
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in self.commands:
                command = self.commands[name]
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
            elif name in STAGES:
                rows.append((name, _shorten(STAGES.summary(name), limit)))
            elif name in self.LAZY:
                rows.append((name, _shorten(_module_summary(f"{__name__}.{self.LAZY[name]}"), limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return self._invoke(ctx)
        except click.ClickException as exc:       # one line, whatever a user's value held
            exc.message = one_line(exc.message)
            raise

    def _invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PseudolabelError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:     # an output folder that cannot be made or written: one line, no traceback
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from None
        except ValueError as exc:
            if "null byte" not in str(exc):                  # a NUL in a path given on the command line
                raise
            raise click.ClickException("a path given holds a NUL byte, which no file name may hold") from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted: finished images are kept; rerun the same command to resume",
                       err=True)
            sys.exit(130)


def one_line(message: str) -> str:
    """``message`` with every line break and control character written as an escape (a value a
    user typed may hold ``\\r``, ``\\x85``...), so an error stays one line."""
    import unicodedata
    return "".join(ch if ch == " " or not (unicodedata.category(ch).startswith(("C", "Z")))
                   else ch.encode("unicode_escape").decode("ascii") for ch in message)


def _set_verbosity(ctx: click.Context, param: click.Parameter, value) -> None:
    if not value:
        return
    root = ctx.find_root()
    root.obj = root.obj or {}
    root.obj["verbosity"] = -1 if param.name == "quiet" else root.obj.get("verbosity", 0) + value


def _with_verbosity(command):
    """``-q`` and ``-v`` also after the command's name (``pseudolabel run RECIPE -q``), as before it."""
    if command is None or any(p.name == "quiet" for p in command.params):
        return command
    command.params += [
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_set_verbosity,
                     help="Only errors and requested output; no progress (as before the command)."),
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_set_verbosity,
                     show_default=False, help="More messages (repeatable)."),
    ]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_verbosity(sub)
    return command


def _shorten(text: str, limit: int) -> str:
    """``text`` cut at a word to at most ``limit`` characters, "..." marking the cut (as click
    shortens a command's own help)."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 3, 1)].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "..."


def _module_summary(module: str) -> str:
    """The first sentence of a module's docstring after its ``name``: prefix, read without importing."""
    import ast
    from importlib.util import find_spec
    from pathlib import Path
    doc = ast.get_docstring(ast.parse(Path(find_spec(module).origin).read_text(encoding="utf-8"))) or ""
    text = " ".join(doc.split())
    text = text.split(": ", 1)[1] if text.startswith("``") and ": " in text else text
    return text[:1].upper() + text[1:]


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


from . import cache, demo, evaluate, export, info, proposals, report, run, stages  # noqa: E402,F401  (registers the commands)
