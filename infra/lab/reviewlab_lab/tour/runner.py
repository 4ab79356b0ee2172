"""Run tour steps on the lab: each on its own screen, its claim checked, the lab put back."""

from __future__ import annotations

import shutil
import signal
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from reviewlab_common.topology import Topology

from reviewlab_lab import errors
from reviewlab_lab.runtimes.base import Runtime
from reviewlab_lab.tour.step import Evidence, Step, TourLab

Say = Callable[[str], None]
# Prose wraps to the terminal, at most this wide (and never narrower than MIN_WIDTH).
WIDTH = 92
MIN_WIDTH = 60
INDENT = "   "


@dataclass(frozen=True)
class Outcome:
    """How one step went: its claim confirmed, or the one line that says what failed."""

    name: str
    passed: bool
    verdict: str
    seconds: float
    evidence: Evidence | None = None
    # What could not be put back (each names what it is): the step fails if any.
    unrestored: list[str] = field(default_factory=list)


# Hands a step's run on (to the console's tour pages); where it can be read, or None.
Publish = Callable[[Step[Any], Outcome], str | None]


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ctrl-C waits while the lab is put back: a second one must not leave it half restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def restore(lab: TourLab) -> list[str]:
    """Undo everything the step changed, newest first; what could not be undone."""
    with _uninterrupted():
        return lab.restore.undo()


def run_step(step: Step[Any], topology: Topology, runtime: Runtime, say: Say) -> Outcome:
    """Run STEP live and check its claim; whatever happens, put the lab back as it was.

    A KeyboardInterrupt still restores first, then goes on up.
    """
    lab = TourLab(topology=topology, runtime=runtime, say=say)
    started = time.monotonic()
    evidence: Evidence | None = None
    unrestored: list[str] = []
    try:
        try:
            evidence = step.run(lab)
            verdict, passed = step.check(evidence), True
        finally:
            unrestored = restore(lab)
    except Exception as exc:
        verdict, passed = errors.describe(exc), False
    if unrestored:
        passed = False
        verdict = f"{verdict}; not put back: {'; '.join(unrestored)}"
    return Outcome(step.name, passed, verdict, time.monotonic() - started, evidence, unrestored)


def width() -> int:
    """The width the tour writes to: the terminal's, less one column, within bounds."""
    return max(MIN_WIDTH, min(WIDTH, shutil.get_terminal_size((WIDTH + 1, 24)).columns - 1))


def wrapped(text: str, first: str = "", indent: str = INDENT) -> list[str]:
    return textwrap.wrap(
        text,
        width(),
        initial_indent=indent + first,
        subsequent_indent=indent + " " * len(first),
        break_long_words=False,
        break_on_hyphens=False,
    )


def introduce(step: Step[Any], number: int, total: int) -> list[str]:
    """The step's first screen: its title and its concept."""
    head = f"[{number}/{total}] {step.title}  ({step.name})"
    return ["", head, "-" * len(head), *wrapped(step.concept)]


def conclude(step: Step[Any], outcome: Outcome) -> list[str]:
    """The evidence, the verdict, what you just saw, and how to repeat it."""
    lines: list[str] = []
    if outcome.evidence is not None:
        lines += ["", *(INDENT + line for line in outcome.evidence.shown)]
        if outcome.evidence.figures:
            lines += ["", f"{INDENT}{'measured':<34} {'value':<22} where"]
            for figure in outcome.evidence.figures:
                row = INDENT + figure.text()
                if len(row) > width():  # where it was measured goes on a line of its own
                    row = INDENT + figure.text().removesuffix(figure.where).rstrip()
                    lines += [row, f"{INDENT}  measured at {figure.where}"]
                else:
                    lines.append(row)
    lines.append("")
    if outcome.passed:
        lines += wrapped(outcome.verdict, first="PASS  ")
        lines += ["", *wrapped(step.saw, first="What you just saw: ")]
    else:
        lines += wrapped(outcome.verdict, first="FAIL  ")
    lines += ["", f"{INDENT}Repeat it: {step.repeat}  (this run took {took(outcome.seconds)})"]
    return lines


def took(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def summary(outcomes: Sequence[Outcome], seconds: float) -> list[str]:
    passed = sum(o.passed for o in outcomes)
    return ["", f"tour: {passed} of {len(outcomes)} steps passed in {seconds:.0f} s"]


def failures(outcomes: Sequence[Outcome]) -> list[str]:
    """One line per failed step."""
    return [f"tour step {o.name} failed: {o.verdict}" for o in outcomes if not o.passed]


def tour(
    steps: Sequence[Step[Any]],
    topology: Topology,
    runtime: Runtime,
    *,
    say: Say = print,
    ask: Callable[[str], str] | None = None,
    publish: Publish | None = None,
) -> list[Outcome]:
    """Run STEPS in order. With ASK (interactive), wait for Enter before each step; 'q' stops.

    PUBLISH gets each step's run as it ends; where it says the run can be read is shown.
    """
    outcomes: list[Outcome] = []
    for number, step in enumerate(steps, 1):
        for line in introduce(step, number, len(steps)):
            say(line)
        if ask is not None:
            try:
                answer = ask(f"\n{INDENT}Press Enter to run it live (q to stop) ")
            except EOFError:  # the input ended: stop as if asked to
                break
            if answer.strip().lower() in ("q", "quit"):
                break
        say(f"\n{INDENT}running it live on the {runtime.name} lab ...")
        outcome = run_step(step, topology, runtime, lambda line: say(f"{INDENT}  {line}"))
        outcomes.append(outcome)
        for line in conclude(step, outcome):
            say(line)
        where = publish(step, outcome) if publish is not None else None
        if where:
            say(f"{INDENT}In the browser: {where}")
    return outcomes
