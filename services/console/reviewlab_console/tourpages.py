"""The guided tour in the browser: the last run of each step as the lab sent it
(reviewlab_lab.tour.pages), kept as JSON beside the reports, and the pages drawn from it.

/tour lists the steps in tour order with how each last went; /tour/NAME shows one step: its
concept, what it showed, its figures, the verdict, the lesson and how to run it again.
Everything the lab sent is escaped: a verdict is text, never markup.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import UTC
from html import escape
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import AwareDatetime, BaseModel, Field, StrictBool, ValidationError, model_validator

NAME = re.compile(r"[a-z0-9-]{1,40}")
# The catalogue's file: a step's name cannot start with "_".
CATALOGUE = "_steps.json"
RUN_ONE = "reviewlab tour run {name}"

Name = Annotated[str, Field(pattern=f"^{NAME.pattern}$")]
Line = Annotated[str, Field(max_length=1000)]
Text = Annotated[str, Field(max_length=10000)]


class StepRef(BaseModel):
    """A step of the catalogue: the tour's steps, in order."""

    name: Name
    title: Annotated[str, Field(min_length=1, max_length=300)]


class Figure(BaseModel):
    label: Line
    value: int | float | Line
    unit: Line
    where: Line


class StepRun(BaseModel):
    """One run of a step, as the lab sends it to POST /api/tour/NAME."""

    name: Name
    number: Annotated[int, Field(ge=1)]
    total: Annotated[int, Field(ge=1)]
    title: Annotated[str, Field(min_length=1, max_length=300)]
    concept: Text
    claim: Text = ""
    saw: Text
    repeat: Line
    passed: StrictBool
    verdict: Text
    seconds: Annotated[float, Field(ge=0)]
    ran_at: AwareDatetime
    runtime: Line
    figures: Annotated[list[Figure], Field(max_length=200)]
    shown: Annotated[list[Line], Field(max_length=1000)]
    steps: Annotated[list[StepRef], Field(min_length=1, max_length=100)]

    @model_validator(mode="after")
    def _one_of_its_steps(self) -> Self:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("steps: each step once")
        if self.total != len(names):
            raise ValueError(f"total: {self.total}, but steps lists {len(names)}")
        if self.number > self.total or names[self.number - 1] != self.name:
            raise ValueError(f"number: step {self.number} of steps is not {self.name!r}")
        return self


class BadRun(ValueError):
    """A body that is not a step's run; the message names the field."""


def received(name: str, body: dict[str, Any]) -> StepRun:
    """The run BODY describes, for the step NAME of the path; BadRun says what is wrong."""
    if not NAME.fullmatch(name):
        raise BadRun(f"{name!r}: a step's name is 1 to 40 of a-z, 0-9 and -")
    try:
        run = StepRun.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise BadRun(f"{where}: {message}" if where else message) from exc
    if run.name != name:
        raise BadRun(f"name: {run.name!r}, but the path names {name!r}")
    return run


class TourPages:
    """The last run of each step, one JSON file each in FOLDER, and the last catalogue."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def keep(self, run: StepRun) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        _write(self.folder / f"{run.name}.json", run.model_dump_json())
        _write(self.folder / CATALOGUE, json.dumps([s.model_dump() for s in run.steps]))

    def catalogue(self) -> list[StepRef]:
        try:
            return [
                StepRef.model_validate(s) for s in json.loads((self.folder / CATALOGUE).read_text())
            ]
        except (OSError, ValueError):  # none yet, or unreadable: as if no step had run
            return []

    def last_run(self, name: str) -> StepRun | None:
        if not NAME.fullmatch(name):
            return None
        try:
            return StepRun.model_validate_json((self.folder / f"{name}.json").read_text())
        except (OSError, ValueError):
            return None

    def index(self) -> str:
        steps = self.catalogue()
        return index_page(steps, {s.name: run for s in steps if (run := self.last_run(s.name))})

    def page(self, name: str) -> str | None:
        """The page of the step NAME; None when no step has that name."""
        steps, run = self.catalogue(), self.last_run(name)
        if run is None and name not in [s.name for s in steps]:
            return None
        return step_page(name, steps, run)


def _write(path: Path, text: str) -> None:
    """Write TEXT to PATH whole or not at all: a page never reads a half-written run."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# The pages. Every value goes through escape(); names match NAME, but are escaped too.


def _prose(text: str) -> str:
    """TEXT escaped, with its `commands` as code, as docs/tour.md shows them."""
    return re.sub(r"`([^`<>]+)`", r"<code>\1</code>", escape(text))


def _html(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)} · Review Lab</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="stylesheet" href="/static/console.css">\n</head>\n<body>\n'
        '<header><h1><a href="/">Review Lab console</a></h1>'
        '<a class="pill" href="/tour">Guided tour</a></header>\n'
        f'<main class="tour">\n{body}\n</main>\n</body>\n</html>\n'
    )


def _verdict(run: StepRun | None) -> str:
    if run is None:
        return '<span class="verdict">not run yet</span>'
    return f'<span class="verdict {"pass" if run.passed else "fail"}">{_mark(run)}</span>'


def _mark(run: StepRun) -> str:
    return "PASS" if run.passed else "FAIL"


def _when(run: StepRun) -> str:
    return run.ran_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _took(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _value(figure: Figure) -> str:
    value = figure.value
    if isinstance(value, float):
        shown = f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    elif isinstance(value, int):
        shown = f"{value:,}"
    else:
        shown = value
    return f"{shown} {figure.unit}".rstrip()


def _link(number: int, step: StepRef, rel: str = "") -> str:
    attribute = f' rel="{rel}"' if rel else ""
    return f'<a{attribute} href="/tour/{escape(step.name)}">{number}. {escape(step.title)}</a>'


def index_page(steps: list[StepRef], runs: dict[str, StepRun]) -> str:
    """Every step in tour order with how it last went and a link to its page."""
    if not steps:
        body = (
            "<h2>The guided tour</h2>\n<p>No step has run yet. On the lab's machine, run "
            "<code>make tour</code> (or <code>reviewlab tour --no-input</code>): each step "
            "shows here as it ends, with what it measured.</p>"
        )
        return _html("The guided tour", body)
    rows = []
    for number, step in enumerate(steps, 1):
        run = runs.get(step.name)
        when = f"{_when(run)} on the {escape(run.runtime)} lab" if run else ""
        rows.append(
            f"<tr><td>{_link(number, step)}</td><td>{_verdict(run)}</td>"
            f'<td class="muted">{when}</td></tr>'
        )
    body = (
        "<h2>The guided tour</h2>\n<p>Each step's last run on the lab, as "
        "<code>reviewlab tour</code> sent it: every run, whole tour or one step, updates its "
        "page.</p>\n"
        '<table class="tour-steps">\n<thead><tr><th>step</th><th>last run</th><th>when</th>'
        f"</tr></thead>\n<tbody>\n{chr(10).join(rows)}\n</tbody>\n</table>"
    )
    return _html("The guided tour", body)


def _nav(name: str, steps: list[StepRef]) -> str:
    names = [s.name for s in steps]
    links = ['<a href="/tour">all steps</a>']
    if name in names:
        at = names.index(name)
        if at > 0:
            links.insert(0, "&larr; " + _link(at, steps[at - 1], "prev"))
        if at + 1 < len(steps):
            links.append(_link(at + 2, steps[at + 1], "next") + " &rarr;")
    return f'<nav class="tour-nav">{" · ".join(links)}</nav>'


def step_page(name: str, steps: list[StepRef], run: StepRun | None) -> str:
    """One step: its last RUN, or how to run it when it has not run yet."""
    nav = _nav(name, steps)
    names = [s.name for s in steps]
    if run is None:
        title = steps[names.index(name)].title
        body = (
            f'{nav}\n<p class="muted">Step {names.index(name) + 1} of {len(steps)} · '
            f"<code>{escape(name)}</code></p>\n<h2>{escape(title)}</h2>\n"
            "<p>This step has not run yet. On the lab's machine, run "
            f"<code>{escape(RUN_ONE.format(name=name))}</code> (or the whole tour, "
            "<code>make tour</code>): its page shows the run as it ends.</p>"
        )
        return _html(title, body)
    number, total = (
        (names.index(name) + 1, len(steps)) if name in names else (run.number, run.total)
    )
    parts = [
        nav,
        f'<p class="muted">Step {number} of {total} · <code>{escape(run.name)}</code></p>',
        f"<h2>{escape(run.title)}</h2>",
        f"<p>{_prose(run.concept)}</p>",
    ]
    if run.claim:
        parts.append(f'<p class="claim"><b>The claim:</b> {escape(run.claim)}</p>')
    if run.shown:
        parts += ["<h3>What it showed</h3>", f"<pre>{escape(chr(10).join(run.shown))}</pre>"]
    if run.figures:
        rows = "\n".join(
            f"<tr><td>{escape(f.label)}</td><td>{escape(_value(f))}</td>"
            f"<td>{escape(f.where)}</td></tr>"
            for f in run.figures
        )
        parts += [
            "<h3>What it measured</h3>",
            '<table class="figures">\n<thead><tr><th>measured</th><th>value</th>'
            f"<th>where</th></tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>",
        ]
    mark = "pass" if run.passed else "fail"
    parts.append(f'<p class="outcome {mark}"><b>{_mark(run)}</b> {escape(run.verdict)}</p>')
    heading = "What you just saw" if run.passed else "What it shows when the claim holds"
    parts += [f"<h3>{heading}</h3>", f"<p>{_prose(run.saw)}</p>"]
    parts += [
        f"<p>Repeat it: <code>{escape(run.repeat)}</code></p>",
        f'<p class="muted">Ran on the {escape(run.runtime)} lab at {_when(run)}; '
        f"it took {_took(run.seconds)}.</p>",
    ]
    return _html(run.title, "\n".join(parts))
