"""Progress for long runs: a live bar on a terminal, periodic plain lines in a log file.

rich draws nothing until the end when output is not a terminal (nohup, CI, a batch
job), so a two-hour run's log would show no sign of life. ``LineProgress`` has the
subset of rich's ``Progress`` API the experiments use and prints one line per task at
most every ``every_s`` seconds, plus one when the task completes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _fmt(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass
class _Task:
    label: str
    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    last_line: float | None = None  # None = nothing printed yet (monotonic() may be small after boot)
    finished: bool = False


class LineProgress:
    """Plain-text progress lines with elapsed time and ETA (for non-terminal output)."""

    def __init__(self, console: Console, every_s: float = 30.0) -> None:
        self.console = console
        self.every_s = every_s
        self.tasks: dict[int, _Task] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, description: str, total: int | None = None, **_: Any) -> int:
        tid = len(self.tasks)
        self.tasks[tid] = _Task(description, int(total or 0))
        return tid

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, completed=self.tasks[task_id].done + int(advance))

    def update(self, task_id: int, completed: float | None = None, **_: Any) -> None:
        t = self.tasks[task_id]
        if completed is not None:
            t.done = int(completed)
        now = time.monotonic()
        complete = t.total > 0 and t.done >= t.total
        due = t.last_line is None or now - t.last_line >= self.every_s
        if t.finished or not (complete or due):
            return
        t.last_line = now
        t.finished = complete
        self.console.print(self.line(task_id, now), highlight=False, markup=False)

    def line(self, task_id: int, now: float | None = None) -> str:
        """'label  done/total  elapsed  ETA' for one task."""
        t = self.tasks[task_id]
        elapsed = (now if now is not None else time.monotonic()) - t.started
        eta = "-"
        if 0 < t.done < t.total:
            eta = _fmt(elapsed / t.done * (t.total - t.done))
        elif t.total and t.done >= t.total:
            eta = "done"
        return f"{t.label}  {t.done}/{t.total}  elapsed {_fmt(elapsed)}  ETA {eta}"


def make_progress(console: Console) -> Progress | LineProgress:
    """A live rich bar on a terminal, plain periodic lines otherwise."""
    if console.is_terminal:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("·"),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                        transient=False)
    return LineProgress(console)
