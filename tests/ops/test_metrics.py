"""/metrics after a real run (gunicorn with two workers, the capture agent, a prefork Celery
worker with two children, a sweep in its own process, all sharing one Prometheus multiprocess
folder), parsed with prometheus_client's text parser: captures in every state, and every counter
agrees with the capture table and the counters table."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from datetime import timedelta

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from django.db.models import Count, Sum
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from collectors_module.accounts.services import key_revoke
from collectors_module.capture.models import PENDING_STATES, Capture, CollectorCounter
from collectors_module.collectors.services import collector_set_limits
from collectors_module.core.protojson import from_dict
from collectors_module.inference.services import model_create
from collectors_module.workflows.services import workflow_create
from tests.ops.stack import free_port, http
from tests.support.capture import ROOT, SENTIMENT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

PREDICT = (
    f"/v2/users/{SENTIMENT['model_user_id']}/apps/{SENTIMENT['model_app_id']}/models/"
    f"{SENTIMENT['model_id']}/versions/{SENTIMENT['model_version_id']}/outputs"
)
TEXTS = [
    "I love this wonderful, beautiful day!",
    "This is awful, I hate it, terrible and sad.",
    "What a great and happy result, fantastic.",
    "Horrible, disgusting, the worst experience ever.",
    "Superb work, I am delighted and grateful.",
    "I am angry and miserable, it is a disaster.",
]


def keep_positive(tenant) -> str:
    """Post-queue workflow: the sentiment model -> keep only 'positive' > 0.5."""
    pb = resources_pb2.Model(id="keep-positive", model_type_id="concept-thresholder")
    pb.output_info.params.update(
        {"concept_threshold_type": "GREATER_THAN", "filter_other_concepts": True}
    )
    pb.output_info.data.concepts.add(id="positive", value=0.5)
    model_create(app=tenant.app, model_pb=pb)
    nodes = [
        {"id": "sent", "model": {"id": "sentiment", "user_id": "builtin", "app_id": "main",
                                 "model_version": {"id": SENTIMENT["model_version_id"]}}},
        {"id": "keep", "model": {"id": "keep-positive"}, "node_inputs": [{"node_id": "sent"}]},
    ]  # fmt: skip
    workflow_create(
        app=tenant.app,
        workflow_pb=from_dict({"id": "enrich", "nodes": nodes}, resources_pb2.Workflow),
    )
    return "enrich"


def scrape(url: str) -> dict:
    """{(name, frozenset(labels)): value} of every sample."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = {(k, str(v)) for k, v in labels.items()}
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def counter_sum(collector, metric: str) -> int:
    return int(
        CollectorCounter.objects.filter(collector=collector, metric=metric).aggregate(
            n=Sum("count")
        )["n"]
        or 0
    )


def wait_for(cond, timeout: float = 60.0, what: str = "", report=None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what}" + (f"\n{report()}" if report else "")
            )
        time.sleep(0.2)


def drain_report(stack, collectors) -> str:
    """What the counters, the table and the processes' logs say (a timed-out wait's message)."""
    lines = []
    for c in collectors:
        counts = dict(
            CollectorCounter.objects.filter(collector=c)
            .values_list("metric")
            .annotate(n=Sum("count"))
        )
        rows = dict(
            Capture.objects.filter(collector=c).values_list("state").annotate(n=Count("pk"))
        )
        lines.append(f"{c.public_id}: counters {counts} rows {rows}")
    for agent in stack.agents.started:
        lines.append(f"agent alive={agent.alive()}:\n{agent.log()[-3000:]}")
    lines.append(f"web:\n{stack.web_log()}")
    return "\n".join(lines)


def predict_all(stack, secret: str, texts) -> None:
    for text in texts:
        status, body = http(
            "POST",
            stack.url + PREDICT,
            {"inputs": [{"data": {"text": {"raw": text}}}]},
            {"Authorization": f"Key {secret}"},
        )
        assert status == 200, body
        assert body["status"]["code"] == 10000, body


def spool_drained(collectors, every, predictions: int) -> bool:
    """The counts of all `predictions` are flushed (`every` matches each one) and every spooled
    capture is a row."""
    if counter_sum(every, "matched") != predictions:
        return False
    spooled = sum(counter_sum(c, "spooled") for c in collectors)
    return spooled > 0 and spooled == Capture.objects.filter(collector__in=collectors).count()


def test_metrics_agree_with_the_capture_table_after_a_run_in_every_state(
    alice, make_collector, make_key, stack
):
    enrich = keep_positive(alice)
    fail_key = make_key(alice.user, description="revoked before the worker runs")
    collectors = {
        "ok": make_collector(alice, "ok"),
        "half": make_collector(alice, "half", sample=0.5),
        "rate": make_collector(alice, "rate"),
        "filter": make_collector(alice, "filter", post_queue_workflow_id=enrich),
        "fail": make_collector(alice, "fail", key=fail_key.key),
        "exp": make_collector(alice, "exp"),
        "disc": make_collector(alice, "disc"),
    }
    collector_set_limits(app=alice.app, collector_id="rate", limits={"max_per_minute": 2})
    by_pk = {c.pk: c for c in collectors.values()}
    stack.start_web()
    stack.start_agent()

    # Phase 1, no worker yet: everything is accepted and waits.
    predict_all(stack, alice.secret, TEXTS)
    wait_for(
        lambda: spool_drained(list(by_pk.values()), collectors["ok"], len(TEXTS)),
        what="the agent to commit the spool",
        report=lambda: drain_report(stack, by_pk.values()),
    )
    # failed: the collector's key is revoked before the worker sees its captures
    key_revoke(owner=alice.user, key_public_id=fail_key.key.public_id)
    # expired: old rows, ended by a sweep (run in its own process, as beat would)
    Capture.objects.filter(collector=collectors["exp"]).update(
        created_at=timezone.now() - timedelta(days=3)
    )
    swept = stack.manage(
        "shell",
        "-c",
        "from collectors_module.capture import counters, sweeper;"
        "print(sweeper.sweep(min_age=0, publish=False)); counters.flush()",
    )
    assert swept.returncode == 0, swept.stderr
    # dropped: deactivated with its pending captures discarded, through the REST API
    status, body = http(
        "POST",
        f"{stack.url}/api/v2/users/alice/apps/app1/collectors/disc/deactivate",
        {"discard_pending": True},
        {"Authorization": f"Key {alice.secret}"},
    )
    assert status == 200, body
    assert body["status"]["code"] == 10000, body

    stack.start_worker(pool="prefork", concurrency=2)
    wait_for(
        lambda: not Capture.objects.filter(state__in=PENDING_STATES).exists(),
        timeout=120,
        what="the worker to finish every capture",
    )
    stack.workers.stop_all()  # graceful: its children are marked dead, their counts stay

    # Phase 2, the worker gone: new captures stay pending.
    predict_all(stack, alice.secret, TEXTS[:2])
    wait_for(
        lambda: spool_drained(list(by_pk.values()), collectors["ok"], len(TEXTS) + 2),
        what="the second spool drain",
        report=lambda: drain_report(stack, by_pk.values()),
    )
    time.sleep(1.0)  # one more flush period of the serving processes

    samples = scrape(stack.url)
    states = defaultdict(lambda: defaultdict(int))
    for row in Capture.objects.values("collector_id", "state").annotate(n=Count("pk")):
        states[row["collector_id"]][row["state"]] = row["n"]
    seen_states = {s for per in states.values() for s, n in per.items() if n}
    assert {"accepted", "ingested", "filtered", "failed", "expired", "dropped"} <= seen_states

    for pk, collector in by_pk.items():
        c = str(pk)
        st = states[pk]
        total = sum(st.values())
        assert value(samples, "collectors_captures_accepted_total", collector=c) == total, collector
        assert value(samples, "collectors_captures_matched_total", collector=c) == counter_sum(
            collector, "matched"
        )
        assert value(samples, "collectors_captures_spooled_total", collector=c) == total
        assert value(samples, "collectors_captures_ingested_total", collector=c) == st["ingested"]
        assert (
            value(samples, "collectors_captures_filtered_total", collector=c, stage="worker")
            == st["filtered"]
        )
        assert value(samples, "collectors_captures_failed_total", collector=c) == st["failed"]
        assert (
            value(samples, "collectors_captures_dropped_total", collector=c, reason="expired")
            == st["expired"]
        )
        assert (
            value(samples, "collectors_captures_dropped_total", collector=c, reason="discarded")
            == st["dropped"]
        )
        for reason, metric in (
            ("sampled_out", "sampled_out"),
            ("rate_limited", "dropped:rate_limited"),
        ):
            assert value(
                samples, "collectors_captures_dropped_total", collector=c, reason=reason
            ) == counter_sum(collector, metric)
        pending = sum(st[s] for s in PENDING_STATES)
        assert value(samples, "collectors_captures_pending", collector=c) == pending
        if pending:
            oldest = value(samples, "collectors_captures_oldest_pending_age_seconds", collector=c)
            assert 0 <= oldest < 120
        worker_ended = st["ingested"] + st["filtered"] + st["failed"]
        assert (
            value(samples, "collectors_capture_ingest_latency_seconds_count", collector=c)
            == worker_ended
        )
        assert (
            value(
                samples, "collectors_collector_info", collector=c, collector_id=collector.public_id
            )
            == 1
        )

    # the shape of the run, so the comparisons above are not all zeros
    ok, half, rate, filt, fail = (
        by_pk[collectors[k].pk] for k in ("ok", "half", "rate", "filter", "fail")
    )
    assert states[ok.pk]["ingested"] == len(TEXTS)
    assert states[ok.pk]["accepted"] == 2
    # sampling: every match either sampled out or accepted (which share depends on request ids)
    assert counter_sum(half, "matched") == counter_sum(half, "sampled_out") + sum(
        states[half.pk].values()
    )
    assert counter_sum(rate, "dropped:rate_limited") > 0
    assert states[filt.pk]["filtered"] > 0
    assert states[filt.pk]["ingested"] > 0
    assert value(
        samples, "collectors_captures_failed_total", collector=str(fail.pk), status="52003"
    ) == len(TEXTS)
    assert states[collectors["exp"].pk]["expired"] == len(TEXTS)
    assert states[collectors["disc"].pk]["dropped"] == len(TEXTS)
    # predict latency per model and transport: one observation per prediction
    assert (
        value(
            samples, "collectors_predict_latency_seconds_count", model="sentiment", transport="rest"
        )
        == len(TEXTS) + 2
    )
    assert value(samples, "collectors_worker_claim_batch_size_count") >= 1
    assert value(samples, "collectors_worker_claim_batch_size_sum") == sum(
        st["ingested"] + st["filtered"] + st["failed"] for st in states.values()
    )
    assert value(samples, "collectors_sweeper_expired_total") == len(TEXTS)
    assert value(samples, "collectors_metrics_database_up") == 1

    # the agent's probe: its spool's agent holds the lock and beats; another folder has none
    probe = stack.manage("healthcheck", "agent", "--json")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert stack.manage("healthcheck", "agent", "--spool", str(stack.base / "none")).returncode == 1

    # A host without a web server serves the same folder with `manage.py metricsserver`.
    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "manage.py", "metricsserver", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, env=stack.workers.env(stack.extra), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: _listening(port), what="metricsserver")
        exported = scrape(f"http://127.0.0.1:{port}")
    finally:
        exporter.terminate()
        exporter.wait(10)
    for name in ("collectors_captures_ingested_total", "collectors_captures_accepted_total"):
        assert value(exported, name) == value(samples, name) > 0
    assert value(exported, "collectors_captures_pending") == 0  # no table gauges by default


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_metrics_need_the_token_when_one_is_set(db, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    client = Client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert ok.status_code == 200
    names = {f.name for f in text_string_to_metric_families(ok.content.decode())}
    assert "collectors_captures_pending" in names


def test_metrics_without_a_token_answer_only_allowed_networks(db, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 401
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
