"""A step of the guided tour: a concept in plain words, a live run on the lab, its claim.

A step's `run` acts on the running lab and returns its evidence: labelled figures with their
unit and where they were measured, and the answers it saw. Its `check` reads that evidence
and says in one sentence what it proved, or raises ClaimFailed: a step that cannot show its
claim fails, it never prints a number it did not measure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from reviewlab_common.topology import Topology

from reviewlab_lab.chaos.scenarios import Fault
from reviewlab_lab.errors import LabFailed
from reviewlab_lab.runtimes.base import Runtime

REPEAT = "reviewlab tour run {name}"


class ClaimFailed(LabFailed):
    """The lab did not show what the step claims; the message says what it showed instead."""


@dataclass(frozen=True)
class Figure:
    """One measured value, its unit, and where it was measured."""

    label: str
    value: float | int | str
    unit: str
    where: str

    def text(self) -> str:
        if isinstance(self.value, float):
            shown = f"{self.value:,.1f}" if abs(self.value) < 100 else f"{self.value:,.0f}"
        else:
            shown = f"{self.value:,}" if isinstance(self.value, int) else self.value
        value = f"{shown} {self.unit}".rstrip()
        return f"{self.label:<34} {value:<22} {self.where}"


@dataclass
class Evidence:
    """What a step saw: figures, and lines shown as they are (answers, bars)."""

    figures: list[Figure] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)

    def add(self, label: str, value: float | int | str, unit: str, where: str) -> None:
        self.figures.append(Figure(label, value, unit, where))


@dataclass
class TourLab:
    """What a step acts on, and how it puts back what it changed.

    `restore` is the chaos runner's undo list: every change a step makes is paired with its
    undo *before* the change is made, and the runner undoes them all, newest first, after the
    step, whether it passed, failed or was interrupted.
    """

    topology: Topology
    runtime: Runtime
    say: Callable[[str], None]
    restore: Fault = field(default_factory=lambda: Fault(undo_steps=[]))

    def undo_later(self, what: str, action: Callable[[], object]) -> None:
        """Put WHAT back after the step (ACTION), even if the step fails or is interrupted."""

        def labelled() -> None:
            try:
                action()
            except Exception as exc:
                raise LabFailed(f"{what}: {exc}") from exc

        self.restore.undo_steps.append(labelled)


E = TypeVar("E", bound=Evidence)


@dataclass(frozen=True)
class Step(Generic[E]):
    """One stop of the tour."""

    name: str
    title: str
    # What the concept is and what the learner is about to see: two or three sentences.
    concept: str
    # The claim the run proves, as the docs state it.
    claim: str
    # "What you just saw": the lesson, in the light of the numbers.
    saw: str
    run: Callable[[TourLab], E]
    # The claim, confirmed in one sentence, or ClaimFailed.
    check: Callable[[E], str]

    @property
    def repeat(self) -> str:
        """The one command that runs this step alone."""
        return REPEAT.format(name=self.name)


def require(holds: bool, failure: str) -> None:
    """ClaimFailed(FAILURE) unless the claim HOLDS."""
    if not holds:
        raise ClaimFailed(failure)
