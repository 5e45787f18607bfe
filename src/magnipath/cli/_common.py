"""Helpers shared by the CLI subcommands: summaries, progress bars, errors."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from magnipath.progress import Progress, ProgressCallback


def _jsonable(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _strict(o: Any) -> Any:
    """NaN -> None everywhere (JSON has no NaN; ``--json`` output stays strict JSON)."""
    if isinstance(o, float) and o != o:
        return None
    if isinstance(o, dict):
        return {k: _strict(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_strict(v) for v in o]
    return o


def emit_summary(summary: dict, *, as_json: bool) -> None:
    """Print ``summary`` as one JSON object or as ``key: value`` lines on stdout.

    Not-a-number values (undefined metrics) are written as ``null`` / ``None``.
    """
    summary = _strict(summary)
    if as_json:
        print(json.dumps(summary, default=_jsonable, indent=1))
        return
    for key, value in summary.items():
        if isinstance(value, dict | list) and len(json.dumps(value, default=_jsonable)) > 100:
            value = json.dumps(value, default=_jsonable, indent=1)
        print(f"{key}: {value}")


def print_error(command: str, err: Exception) -> None:
    """One paragraph on stderr: what went wrong and what to do."""
    msg = textwrap.fill(str(err), width=100, subsequent_indent="  ", break_on_hyphens=False)
    print(f"magnipath {command}: error: {msg}", file=sys.stderr)


def make_progress_bar(disable: bool = False) -> tuple[ProgressCallback, Callable[[], None]]:
    """A progress callback drawing one tqdm bar per stage on stderr, and its closer."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(ev: Progress) -> None:
        if disable:
            return
        bar = bars.get(ev.stage)
        if bar is None:
            bar = bars[ev.stage] = tqdm(total=ev.total, desc=ev.stage, file=sys.stderr,
                                        leave=False, dynamic_ncols=True)
        if ev.total is not None and bar.total != ev.total:
            bar.total = ev.total
        bar.n = ev.done
        if ev.info:
            short = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in ev.info.items()
                     if isinstance(v, int | float | str) and len(str(v)) < 20}
            bar.set_postfix(short, refresh=False)
        bar.refresh()

    def close() -> None:
        for bar in bars.values():
            bar.close()
        bars.clear()

    return progress, close


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is for the user: printed as one paragraph, exit 1."""
    from magnipath._errors import MagnipathError

    errors: list[type[BaseException]] = [MagnipathError]
    try:
        from qupath_bridge.errors import QuPathBridgeError
    except ImportError:  # pragma: no cover - the bridge always ships with magnipath
        pass
    else:
        errors.append(QuPathBridgeError)
    return tuple(errors)
