"""The ``magnipath`` command line.

Every subcommand lives in its own module with ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args, progress) -> dict``; the dict is the
summary printed as JSON with ``--json`` or as readable lines otherwise. User
errors (:class:`magnipath.MagnipathError`) print one paragraph and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.set_defaults(_module=mod)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``magnipath`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    progress, close = make_progress_bar(disable=args.quiet or args.json)
    try:
        summary = args._module.run(args, progress)
    except user_errors() as e:
        close()
        print_error(args.command, e)
        return 1
    except KeyboardInterrupt:
        close()
        print(f"magnipath {args.command}: interrupted", file=sys.stderr)
        return 130
    close()
    try:
        emit_summary(summary, as_json=args.json)
    except BrokenPipeError:  # e.g. `magnipath info slide.tif | head`
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
