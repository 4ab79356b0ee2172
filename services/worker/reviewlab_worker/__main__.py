"""Run one segmentation worker: health server, outbox relay and the job loop."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from reviewlab_common import cdn, logs, queue, storage, tracing
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.db import app_router
from reviewlab_common.faults import DelaySwitch
from reviewlab_common.health import service_checks

from reviewlab_worker import health, relay
from reviewlab_worker.jobs import JobRunner
from reviewlab_worker.segmentation import PortraitSegmenter
from reviewlab_worker.settings import WorkerSettings


def main() -> None:
    logs.configure()
    settings = WorkerSettings()  # type: ignore[call-arg]  # REVIEWLAB_NODE comes from the environment
    topology = settings.topology()
    node = settings.this_node()
    # Before any client is made: the instrumentations wrap the clients' classes.
    tracing.configure(topology, node)
    # Every client from the secrets read once, not one read of lab.json each.
    secrets = lab_secrets.load(topology)
    shards = {
        c.name: app_router(topology, c, app=node.name, max_size=4, secrets=secrets)
        for c in topology.shards
    }
    for shard in shards.values():
        shard.open()
    client = queue.connect(topology, "worker", timeout=3.0, secrets=secrets)
    s3 = storage.client(topology, secrets=secrets)
    model = settings.model_path()
    if not model.exists():
        raise SystemExit(f"model {model} is missing: run `make setup`")
    # One interpreter per process: the worker handles one job at a time.
    segmenter = PortraitSegmenter(model, num_threads=1)

    # Readiness asks its own bounded clients: the job loop's Redis client blocks on the
    # stream for up to a second, and its S3 client waits out a photo's upload.
    checks = service_checks(topology, clusters=shards, user="worker", secrets=secrets)
    health.serve(node, checks.unreachable)
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        logging.info("signal %d: finishing the current job, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(
        target=relay.run,
        args=(
            list(shards.values()),
            queue.connect(topology, "worker", secrets=secrets),
            settings.relay_interval_s,
            stop,
            relay.start_listeners(list(shards.values()), stop),
        ),
        name="outbox-relay",
        daemon=True,
    ).start()
    runner = JobRunner(
        consumer=node.name,
        client=client,
        s3=s3,
        shards=shards,
        segmenter=segmenter,
        max_attempts=settings.max_attempts,
        backoff_base_s=settings.backoff_base_s,
        reclaim_idle_ms=settings.reclaim_idle_ms,
        max_side=settings.max_side,
        # Read at every job (one small file per job): a switch set just before a job holds.
        delay=DelaySwitch(topology, node.name, refresh=0.0),
        push=lambda keys: cdn.push(topology, keys, timeout=1.0),
    )
    logging.info("worker %s ready: model %s", node.name, model)
    runner.run(stop)
    tracing.shutdown()


if __name__ == "__main__":
    main()
