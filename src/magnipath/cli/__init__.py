"""The ``magnipath`` command line.

Every subcommand lives in its own module with ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args, progress) -> dict``; the dict is the
summary printed as JSON with ``--json`` (only JSON on stdout), or as readable
lines otherwise, the last thing printed; ``--summary FILE`` also writes the JSON
to a file. A module may define ``human_lines(summary, args) -> list[str]`` (its
own result lines, printed after everything else) and ``exit_code(summary, args)
-> int``. User errors (:class:`magnipath.MagnipathError`, and a file where a
folder is needed) print one paragraph and exit 1. Each warning is printed once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from magnipath import __version__
from magnipath.cli._common import emit_summary, make_progress_bar, print_error, user_errors


def _subcommand_modules() -> list:
    """Every public module of :mod:`magnipath.cli` is a subcommand, listed by ``ORDER``."""
    import pkgutil

    mods = [importlib.import_module(f"magnipath.cli.{m.name}")
            for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 50), m.NAME))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="magnipath",
        description="Multi-magnification deep learning for whole-slide images "
                    "(napari + QuPath). Coordinates are level-0 pixels; "
                    "magnification = 10 / mpp.",
    )
    parser.add_argument("--version", action="version", version=f"magnipath {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _subcommand_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.add_argument("--json", action="store_true",
                       help="print a machine-readable JSON summary on stdout")
        p.add_argument("--summary", type=Path, default=None, metavar="FILE",
                       help="also write the JSON summary to FILE (the text summary names it)")
        p.add_argument("--quiet", action="store_true",
                       help="no progress output (bars on a terminal, one line per stage "
                            "otherwise)")
        p.set_defaults(_module=mod)
    return parser


def _path_error(err: OSError) -> str:
    """One paragraph for an OS error about a path (a file where a folder is needed...)."""
    name = err.filename or "a path"
    if isinstance(err, NotADirectoryError | FileExistsError):
        return (f"{name}: a file is in the way where a folder is needed ({err.strerror}); "
                "give another output folder (--out) or move the file")
    if isinstance(err, IsADirectoryError):
        return f"{name}: is a folder where a file is needed; give a file path"
    return f"{name}: {err.strerror or err}; check the path and its permissions"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``magnipath`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    progress, close = make_progress_bar(disable=args.quiet or args.json)
    seen: set[tuple[type, str]] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        key = (category, str(message))
        if key in seen:  # one slide opened by several stages: say it once
            return
        seen.add(key)
        progress.write(f"magnipath {args.command}: warning: {message}")

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            summary = args._module.run(args, progress)
        except user_errors() as e:
            close()
            print_error(args.command, e)
            return 1
        except (NotADirectoryError, FileExistsError, IsADirectoryError, PermissionError) as e:
            close()
            print_error(args.command, type(e)(_path_error(e)))
            return 1
        except KeyboardInterrupt:
            close()
            print(f"magnipath {args.command}: interrupted", file=sys.stderr)
            return 130
        finally:
            close()
    human = getattr(args._module, "human_lines", None)
    try:
        emit_summary(summary, as_json=args.json, json_file=args.summary,
                     extra_lines=None if human is None else human(summary, args))
    except BrokenPipeError:  # e.g. `magnipath info slide.tif | head`
        sys.stderr.close()
        return 0
    code = getattr(args._module, "exit_code", None)
    return 0 if code is None else int(code(summary, args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
