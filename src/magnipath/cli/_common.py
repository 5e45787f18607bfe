"""Helpers shared by the CLI subcommands: summaries, progress bars, errors."""

from __future__ import annotations

import json
import sys
import textwrap
import time
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


_LONG = 100
"""Values whose one-line JSON is longer than this are not printed whole in the text form."""


def _short(value: Any) -> str | None:
    """One-line text of ``value`` when it is short, else None."""
    if isinstance(value, dict | list):
        text = json.dumps(value, default=_jsonable)
        return str(value) if len(text) <= _LONG else None
    return str(value)


_DEPTH = 3
"""Nesting levels of a summary shown in the text form; deeper long values are left out."""


def _render(key: str, value: Any, indent: str, depth: int, lines: list[str]) -> bool:
    """Append the text lines of one ``key: value``; return True when something was left out."""
    text = _short(value)
    if text is not None:
        lines.append(f"{indent}{key}: {text}")
        return False
    if isinstance(value, list) and all(isinstance(v, str) for v in value):  # messages
        lines.append(f"{indent}{key}:")
        lines += [f"{indent}  - {v}" for v in value]
        return False
    if depth >= _DEPTH:
        lines.append(f"{indent}{key}: ({len(value)} entries, in the JSON summary)")
        return True
    lines.append(f"{indent}{key}:")
    omitted = False
    if isinstance(value, dict):
        for k, v in value.items():
            omitted |= _render(str(k), v, indent + "  ", depth + 1, lines)
    else:
        for i, v in enumerate(value):
            if isinstance(v, dict | list) and len(json.dumps(v, default=_jsonable)) > 2 * _LONG:
                omitted |= _render(f"[{i}]", v, indent + "  ", depth + 1, lines)
            else:
                lines.append(f"{indent}  - {v}")
    return omitted


def summary_lines(summary: dict) -> tuple[list[str], bool]:
    """The text form of a summary: ``key: value`` lines; returns them and whether some
    values were left out.

    Short values take one line; long dicts and lists are shown as indented
    ``key: value`` / ``- item`` lines down to :data:`_DEPTH` levels, below which a
    long value is replaced by a note that the JSON summary holds it.
    """
    lines: list[str] = []
    omitted = False
    for key, value in summary.items():
        omitted |= _render(str(key), value, "", 1, lines)
    return lines, omitted


def emit_summary(summary: dict, *, as_json: bool, json_file: Path | None = None,
                 extra_lines: list[str] | None = None, stream: Any = None) -> None:
    """Print ``summary`` as one JSON object, or as readable ``key: value`` lines.

    Not-a-number values (undefined metrics) are written as ``null`` / ``None``.

    Parameters
    ----------
    summary : dict
        The subcommand's summary.
    as_json : bool
        Print JSON (only JSON) on ``stream``.
    json_file : Path, optional
        Also write the JSON summary to this file (atomically); the text form names it.
    extra_lines : list of str, optional
        The subcommand's own human summary (text form only): printed instead of the
        ``key: value`` lines, after the line naming ``json_file``.
    stream : file, optional
        Default ``sys.stdout``.
    """
    from magnipath._io import atomic_write_text

    out = sys.stdout if stream is None else stream
    summary = _strict(summary)
    text = json.dumps(summary, default=_jsonable, indent=1)
    if json_file is not None:
        atomic_write_text(json_file, text + "\n")
    if as_json:
        print(text, file=out)
        return
    if extra_lines is not None:
        lines = ([] if json_file is None else [f"full summary (JSON): {json_file}"])
        lines += extra_lines
    else:
        lines, omitted = summary_lines(summary)
        if json_file is not None:
            lines.append(f"full summary (JSON): {json_file}")
        elif omitted:
            lines.append("full summary: add --json (JSON on stdout) or --summary FILE")
    for line in lines:
        print(line, file=out)


def print_error(command: str, err: Exception) -> None:
    """One paragraph on stderr: what went wrong and what to do."""
    msg = textwrap.fill(str(err), width=100, subsequent_indent="  ", break_on_hyphens=False)
    print(f"magnipath {command}: error: {msg}", file=sys.stderr)


def _clock(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m // 60:d}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m:02d}:{s:02d}"


def _postfix(info: dict) -> dict[str, Any]:
    return {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in info.items()
            if isinstance(v, int | float | str) and len(str(v)) < 20}


class ProgressDisplay:
    """Turns progress events into terminal output on ``stream`` (default stderr).

    On a terminal: one tqdm bar per stage. A stage that starts again (its count
    goes back, e.g. the next slide or epoch) restarts its bar, so elapsed time,
    rate and ETA are those of the current pass. Not on a terminal (a log file, a
    pipe): no bars; one line when a stage marks a step (``step=...``) and one
    when a pass of a stage completes, at most one per ``min_interval`` seconds for
    a stage that repeats (epochs).

    Parameters
    ----------
    stream : file, optional
        Where to draw; default ``sys.stderr``.
    disable : bool
        Draw nothing (``--quiet``, ``--json``).
    tty : bool, optional
        Force bar mode (True) or line mode (False); default ``stream.isatty()``.
    min_interval : float
        Line mode: seconds between two lines of the same repeating stage.
    clock : callable
        Monotonic clock, seconds (for tests).
    """

    def __init__(self, stream: Any = None, *, disable: bool = False, tty: bool | None = None,
                 min_interval: float = 20.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.disable = disable
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty()) if callable(isatty) else False
        self.tty = tty
        self.min_interval = float(min_interval)
        self.clock = clock
        self.t0 = clock()
        self.bars: dict[str, Any] = {}
        self._done: dict[str, int] = {}
        self._pass_start: dict[str, float] = {}
        self._last_line: dict[str, float] = {}
        self._completions: dict[str, int] = {}

    # -- events ---------------------------------------------------------------------------------
    def __call__(self, ev: Progress) -> None:
        if self.disable:
            return
        now = self.clock()
        prev = self._done.get(ev.stage)
        restarted = prev is None or ev.done < prev or (ev.done == 0 and prev > 0)
        if restarted:
            self._pass_start[ev.stage] = now
        self._done[ev.stage] = ev.done
        if self.tty:
            self._bar(ev, restarted)
        else:
            self._line(ev, now)

    def _bar(self, ev: Progress, restarted: bool) -> None:
        from tqdm import tqdm

        bar = self.bars.get(ev.stage)
        if bar is None:
            bar = self.bars[ev.stage] = tqdm(total=ev.total, desc=ev.stage, file=self.stream,
                                             leave=False, dynamic_ncols=True)
        elif restarted:
            bar.reset(total=ev.total)
        if ev.total is not None and bar.total != ev.total:
            bar.total = ev.total
        if ev.done > bar.n:
            bar.update(ev.done - bar.n)
        elif ev.done < bar.n:
            bar.n = ev.done
        if ev.info:
            bar.set_postfix(_postfix(ev.info), refresh=False)
        bar.refresh()

    def _line(self, ev: Progress, now: float) -> None:
        step = ev.info.get("step")
        of = f"{ev.done}/{ev.total}" if ev.total is not None else f"{ev.done}"
        stamp = f"[{_clock(now - self.t0)}]"
        if step is not None:
            self._print(f"{stamp} {ev.stage}: {step} ({of})")
            return
        if ev.total is None or ev.total <= 0 or ev.done < ev.total:
            return
        n = self._completions[ev.stage] = self._completions.get(ev.stage, 0) + 1
        last = self._last_line.get(ev.stage)
        if n > 1 and last is not None and now - last < self.min_interval:
            return
        self._last_line[ev.stage] = now
        took = now - self._pass_start.get(ev.stage, now)
        post = _postfix({k: v for k, v in ev.info.items() if k != "step"})
        extra = "".join(f" {k}={v}" for k, v in post.items())
        self._print(f"{stamp} {ev.stage}: {of} done in {took:.1f} s{extra}")

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    # -- text next to the bars ---------------------------------------------------------------
    def write(self, text: str) -> None:
        """Print ``text`` on its own line(s) without breaking a bar."""
        if self.tty and self.bars:
            from tqdm import tqdm

            tqdm.write(text, file=self.stream)
        else:
            self._print(text)

    def close(self) -> None:
        """Remove every bar (the terminal is then free for the summary)."""
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def make_progress_bar(disable: bool = False) -> tuple[ProgressCallback, Callable[[], None]]:
    """A progress callback for the terminal (:class:`ProgressDisplay` on stderr) and its closer."""
    display = ProgressDisplay(disable=disable)
    return display, display.close


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
