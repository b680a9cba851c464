"""Delivery under faults (reliability.md §6.1): killed workers, crash points, a broker outage.

Invariant: every accepted capture reaches exactly one terminal state, the destination holds at
most one input per capture. Every fault test also proves the fault hit in-flight work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time

import pytest
from django.utils import timezone

from collectors_module.capture import relay
from collectors_module.capture.models import TERMINAL_STATES, Capture, CaptureState
from collectors_module.capture.relay import publish_ids
from collectors_module.inputs.models import Input
from tests.support.capture import predict_text

from .test_pipeline import accept

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def drain(ids, sweep, *, timeout: float = 90.0, every: float = 2.0) -> dict[str, str]:
    """Run the sweeper (as beat would) until every capture is terminal or the deadline passes."""
    ids = [str(i) for i in ids]
    deadline = time.monotonic() + timeout
    last_sweep = 0.0
    while True:
        states = dict(Capture.objects.filter(pk__in=ids).values_list("pk", "state"))
        states = {str(k): v for k, v in states.items()}
        if all(s in TERMINAL_STATES for s in states.values()) or time.monotonic() > deadline:
            return states
        if time.monotonic() - last_sweep >= every:
            sweep()
            last_sweep = time.monotonic()
        time.sleep(0.2)


def oracle(app, captures) -> dict:
    """lost / duplicated / phantoms, as reliability.md §8 defines them."""
    ids = {str(c.pk) for c in captures}
    rows = {
        str(pk): (state, reason)
        for pk, state, reason in Capture.objects.filter(pk__in=ids).values_list(
            "pk", "state", "reason"
        )
    }
    inputs = list(Input.objects.filter(app=app).values_list("public_id", flat=True))
    expected = {f"cap-{c.pk.hex}" for c in captures}
    per_capture = {i: inputs.count(i) for i in expected}
    return {
        "accepted": len(ids),
        "lost": sum(1 for i in ids if rows.get(i, ("", ""))[0] not in TERMINAL_STATES),
        "duplicated": sum(max(0, n - 1) for n in per_capture.values()),
        "phantoms": sum(1 for i in inputs if i not in expected),
        "ingested": sum(1 for s, _ in rows.values() if s == CaptureState.INGESTED),
        "missing_input": sum(
            1
            for i, (s, _) in rows.items()
            if s == CaptureState.INGESTED and per_capture.get(f"cap-{i.replace('-', '')}", 0) != 1
        ),
        "no_reason": sum(
            1 for s, r in rows.values() if s not in (CaptureState.INGESTED,) and not r
        ),
    }


def assert_exactly_once(app, captures) -> dict:
    o = oracle(app, captures)
    assert o["lost"] == 0, o
    assert o["duplicated"] == 0, o
    assert o["phantoms"] == 0, o
    assert o["missing_input"] == 0, o
    assert o["no_reason"] == 0, o
    return o


def test_sigkilled_worker_with_captures_in_flight_loses_and_duplicates_nothing(
    alice, make_collector, celery_workers, run_sweep
):
    collector = make_collector(alice)
    captures = [accept(collector, alice.user, f"capture {i}", publish=False) for i in range(60)]
    # Slow enrichment (0.2 s per capture) so the kill lands while batches are being processed.
    worker = celery_workers.start(
        pool="prefork",
        concurrency=2,
        env={"COLLECTORS_FAULTS": "after_enrich:sleep", "COLLECTORS_FAULT_SLEEP": "0.2"},
    )
    publish_ids([c.pk for c in captures], batch=5)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # some done, and a batch claimed right now
        if (
            Capture.objects.filter(state=CaptureState.INGESTED).count() >= 10
            and Capture.objects.filter(state=CaptureState.PROCESSING).exists()
        ):
            break
        time.sleep(0.01)
    children = worker.child_pids()
    assert children, worker.log()
    killed = worker.kill(children=True)  # main and children, SIGKILL
    assert worker.pid in killed
    assert set(children) <= set(killed)
    in_flight = Capture.objects.filter(state=CaptureState.PROCESSING).count()
    done_at_kill = Capture.objects.filter(state=CaptureState.INGESTED).count()
    assert in_flight > 0, "the kill must hit captures in flight"
    assert done_at_kill < len(captures)

    celery_workers.start(pool="prefork", concurrency=2)
    states = drain([c.pk for c in captures], lambda: run_sweep(), timeout=90)
    assert set(states.values()) == {CaptureState.INGESTED}, states
    o = assert_exactly_once(alice.app, captures)
    assert o["ingested"] == 60
    # re-execution evidence: the captures that were in flight were claimed a second time
    assert Capture.objects.filter(attempts__gte=2).count() >= in_flight


@pytest.mark.parametrize(
    "point",
    ["before_claim", "after_claim", "after_remote_post", "after_mark_ingested", "before_ack"],
)
def test_crash_point_kill_still_ingests_exactly_once(
    point, alice, make_collector, celery_workers, run_sweep
):
    collector = make_collector(alice)
    captures = [accept(collector, alice.user, f"{point} {i}", publish=False) for i in range(5)]
    worker = celery_workers.start(pool="solo", env={"COLLECTORS_FAULTS": f"{point}:kill"})
    publish_ids([c.pk for c in captures], batch=5)
    assert worker.wait_exit(20) == -signal.SIGKILL, worker.log()
    states_at_crash = set(
        Capture.objects.filter(pk__in=[c.pk for c in captures]).values_list("state", flat=True)
    )
    committed = Input.objects.filter(app=alice.app).count()
    if point in ("before_claim",):
        assert states_at_crash == {CaptureState.ACCEPTED}
        assert committed == 0
    elif point == "after_claim":
        assert states_at_crash == {CaptureState.PROCESSING}  # claimed, then killed: in flight
        assert committed == 0
    else:  # the destination insert and the mark had committed; the ack had not happened
        assert states_at_crash == {CaptureState.INGESTED}
        assert committed == 5

    celery_workers.start(pool="solo")
    states = drain([c.pk for c in captures], lambda: run_sweep(), timeout=60)
    assert set(states.values()) == {CaptureState.INGESTED}, states
    assert_exactly_once(alice.app, captures)
    attempts = set(
        Capture.objects.filter(pk__in=[c.pk for c in captures]).values_list("attempts", flat=True)
    )
    assert attempts == ({2} if point == "after_claim" else {1})


def test_child_killed_mid_batch_is_requeued_and_ingested_once(
    alice, make_collector, celery_workers, run_sweep
):
    """reject_on_worker_lost: the killed child's message comes back at once (no visibility wait)."""
    collector = make_collector(alice)
    captures = [accept(collector, alice.user, f"child {i}", publish=False) for i in range(10)]
    worker = celery_workers.start(
        pool="prefork",
        concurrency=1,
        env={"COLLECTORS_FAULTS": "after_enrich:sleep", "COLLECTORS_FAULT_SLEEP": "0.3"},
    )
    publish_ids([c.pk for c in captures], batch=10)
    deadline = time.monotonic() + 15
    while (
        not Capture.objects.filter(state=CaptureState.PROCESSING).exists()
        and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    in_flight = Capture.objects.filter(state=CaptureState.PROCESSING).count()
    assert in_flight == 10
    assert worker.kill_children()
    started = time.monotonic()
    states = drain([c.pk for c in captures], lambda: run_sweep(), timeout=60)
    assert set(states.values()) == {CaptureState.INGESTED}, (states, worker.log())
    assert time.monotonic() - started < 10 + 10  # lease + margin
    assert_exactly_once(alice.app, captures)
    assert set(
        Capture.objects.filter(pk__in=[c.pk for c in captures]).values_list("attempts", flat=True)
    ) == {2}


# -- broker outage ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server (never the shared one) that the test may stop and start."""

    def __init__(self, port: int):
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@contextlib.contextmanager
def broker_at(url: str):
    """Point this process's Celery app and relay at another broker for the test's duration."""
    from collectors_module.capture import relay
    from collectors_module.celery import app

    def switch(target: str) -> None:
        os.environ["CELERY_BROKER_URL"] = target  # Celery reads this before its own setting
        app.conf.broker_url = target
        app.conf.broker_write_url = None
        pool = app._pool
        app._pool = None
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.force_close_all()
        relay.reset()

    old = os.environ.get("CELERY_BROKER_URL") or app.conf.broker_url
    switch(url)
    try:
        yield
    finally:
        switch(old)


def timed_predictions(api, secret: str, n: int, tag: str) -> list[float]:
    latencies = []
    for i in range(n):
        started = time.perf_counter()
        reply = predict_text(api, secret, f"{tag} {i} is good")
        latencies.append(time.perf_counter() - started)
        assert reply["_http"] == 200, reply
        assert reply["status"]["code"] == 10000, reply
    return latencies


def test_broker_outage_changes_no_prediction_and_every_capture_is_ingested_after(
    alice, make_collector, celery_workers, run_sweep, api
):
    server = RedisServer(_free_port())
    server.start()
    try:
        with broker_at(server.url):
            collector = make_collector(alice)
            worker = celery_workers.start(
                pool="prefork", concurrency=2, env={"CELERY_BROKER_URL": server.url}
            )
            timed_predictions(api, alice.secret, 5, "warm up")
            up = timed_predictions(api, alice.secret, 30, "broker up")

            server.stop()  # the broker is gone while predictions keep coming
            outage_started = timezone.now()
            down = timed_predictions(api, alice.secret, 30, "broker down")
            during = list(
                Capture.objects.filter(collector=collector, created_at__gte=outage_started)
            )
            assert len(during) == 30  # every capture accepted (durable) despite the outage
            assert all(c.state == CaptureState.ACCEPTED for c in during)
            assert relay.flush(5)
            assert relay.stats()["dropped_broker"] > 0  # the outage really hit the publish path

            server.start()  # same port: the worker reconnects, the sweeper republishes
            up_again = timed_predictions(api, alice.secret, 30, "broker back")

            # The machine is shared and noisy: compare with the slower of the two broker-up runs.
            p50_up = max(statistics.median(up), statistics.median(up_again))
            p50_down = statistics.median(down)
            assert p50_down <= p50_up * 1.5 + 0.010, (p50_up, p50_down)
            # no prediction waited on the dead broker (connect timeout, publish retries)
            assert max(down) < max(max(up), max(up_again)) + 0.5, (max(up), max(down))
            captures = list(Capture.objects.filter(collector=collector))
            assert len(captures) == 95
            # Workers run under a supervisor (systemd Restart=always, ...): a Celery worker can
            # exit with kombu's "Unrecoverable error" on reconnecting after a broker restart.
            current = [worker]
            restarts: list[str] = []

            def sweep_and_supervise():
                if not current[0].alive():
                    restarts.append(current[0].log()[-400:])
                    current[0] = celery_workers.start(
                        pool="prefork", concurrency=2, env={"CELERY_BROKER_URL": server.url}
                    )
                run_sweep()

            states = drain([c.pk for c in captures], sweep_and_supervise, timeout=90)
            counts = {s: list(states.values()).count(s) for s in set(states.values())}
            assert set(states.values()) == {CaptureState.INGESTED}, (
                counts,
                current[0].alive(),
                restarts,
                current[0].log(),
            )
            assert_exactly_once(alice.app, captures)
    finally:
        server.stop()
