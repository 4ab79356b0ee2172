"""docs/tour.md, written from the step definitions: `reviewlab tour docs` (a test checks it)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reviewlab_lab.errors import LabFailed
from reviewlab_lab.paths import REPO
from reviewlab_lab.tour.registry import STEPS
from reviewlab_lab.tour.step import Step

TOUR_DOC = REPO / "docs" / "tour.md"
COMMAND = "reviewlab tour docs"
WIDTH = 92

INTRO = """\
The tour walks through the big picture of a web system on the running lab, in the order the
system-design article tells it. Every step says what the concept is, does it live on the lab
(either runtime), shows the evidence with the numbers it measured (each with its unit and
where it was measured), checks the claim below, and puts back whatever it changed: the
vIP's mode, objects, rows, a paused replica. Ctrl-C in the middle of a step puts it back too.

```sh
make tour                 # the whole tour: press Enter before each step
make tour STEP=cdn        # one step (= reviewlab tour run cdn)
reviewlab tour list       # the steps
reviewlab tour --no-input # unattended (CI): one line per failed step, exit status 1 if any
```

A step that cannot show its claim fails and says what it saw instead; it never prints a
number it did not measure. `tests/integration/test_tour.py` runs the unattended tour against
the lab and checks that every claim held and nothing was left behind.

Every run, whole tour or one step, also sends each step's outcome to the lab console: its
last run, evidence and figures included, is readable in the browser at
<http://console.shop.internal:8080/tour> ([docs/console.md](console.md)), and the tour prints
the step's address there."""


def markdown(steps: Sequence[Step[Any]] = STEPS) -> str:
    lines = [
        "# The guided tour",
        "",
        f"<!-- generated from the steps in infra/lab/reviewlab_lab/tour/ by `{COMMAND}`; "
        "edit them, not this file -->",
        "",
        INTRO,
        "",
        "| # | step | about |",
        "|---|---|---|",
    ]
    lines += [
        f"| {n} | [`{s.name}`](#{n}-{anchor(s)}) | {s.title} |" for n, s in enumerate(steps, 1)
    ]
    for number, step in enumerate(steps, 1):
        lines += [
            "",
            f"## {number}. {step.title}",
            "",
            fill(step.concept),
            "",
            fill(f"**The claim it checks.** {step.claim}"),
            "",
            fill(f"**What you just saw.** {step.saw}"),
            "",
            f"Repeat it: `{step.repeat}` (or `make tour STEP={step.name}`).",
        ]
    return "\n".join(lines) + "\n"


def fill(text: str) -> str:
    """A paragraph wrapped like the other pages of docs/."""
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def anchor(step: Step[Any]) -> str:
    """GitHub's anchor for the step's heading, without its number."""
    kept = "".join(c for c in step.title.lower() if c.isalnum() or c in " -")
    return kept.replace(" ", "-")


def stale_reason(path: Path = TOUR_DOC) -> str | None:
    """Why the committed page differs from the steps, or None."""
    if not path.exists():
        return f"{path.name} is missing: run `{COMMAND}`"
    if path.read_text() != markdown():
        return f"{path.name} is stale: the tour's steps changed; run `{COMMAND}`"
    return None


def generate(path: Path = TOUR_DOC) -> bool:
    """Write the page; True when it changed."""
    text = markdown()
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def check() -> str:
    stale = stale_reason()
    if stale:
        raise LabFailed(stale)
    return f"{TOUR_DOC.name} matches the tour's steps"
