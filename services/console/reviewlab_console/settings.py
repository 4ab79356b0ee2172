"""The console's settings: which node it is, where its chart library and the reports are."""

from __future__ import annotations

from pathlib import Path

from reviewlab_common.settings import NodeSettings


class ConsoleSettings(NodeSettings):
    """REVIEWLAB_NODE, REVIEWLAB_CHARTS and REVIEWLAB_REPORTS (the lab sets all three)."""

    # The folder of the vendored chart library (uPlot's dist files, infra/setup.sh).
    charts: Path
    # Where a chaos run started from the page writes its report.
    reports: Path
