"""The load balancer's mode (layer and algorithm) and its nginx config."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import jinja2
from reviewlab_common.topology import Topology

from reviewlab_lab.paths import LabPaths

LAYERS = ("l4", "l7")
ALGORITHMS = {
    "round_robin": "",
    "random": "random two least_conn;",
    "least_conn": "least_conn;",
}


@dataclass(frozen=True)
class LbMode:
    layer: str = "l7"
    algorithm: str = "round_robin"


def mode_file(paths: LabPaths) -> str:
    return str(paths.conf / "lb-mode.json")


def current_mode(paths: LabPaths) -> LbMode:
    try:
        with open(mode_file(paths)) as handle:
            return LbMode(**json.load(handle))
    except FileNotFoundError:
        return LbMode()


def save_mode(paths: LabPaths, mode: LbMode) -> None:
    paths.conf.mkdir(parents=True, exist_ok=True)
    with open(mode_file(paths), "w") as handle:
        json.dump(asdict(mode), handle)


def render_config(topology: Topology, paths: LabPaths, jinja: jinja2.Environment) -> str:
    node = topology.one("lb")
    mode = current_mode(paths)
    return jinja.get_template("lb.conf.j2").render(
        node=node,
        mode=mode,
        node_run=paths.node_run(node.name),
        data_dir=paths.data(node.name),
        algorithm_directive=ALGORITHMS[mode.algorithm],
        webs=topology.of_kind("web"),
    )
