"""Prometheus metrics of every process (prometheus-client).

With `PROMETHEUS_MULTIPROC_DIR` set (the environment variable prometheus-client itself reads;
settings.py declares it and creates the folder), every process of a host (gunicorn workers, the
gRPC server, the capture agent, Celery prefork children) writes its values to memory-mapped files
there and `/metrics` adds them up; a process that ends is marked dead (gunicorn's `child_exit`
hook in `ops/gunicorn.py`, Celery's `worker_process_shutdown` in `ops/heartbeat.py`). Without it,
`/metrics` shows the serving process's own values only (fine for one process, not for a fleet).

Where the capture counts come from, so that nothing is added to the prediction's own path:
the request thread counts into `capture.counters` (a dict update it already does), and the
counters' flush (the background thread of a server, the end of a task in a worker, the agent's
loop) adds what it wrote to the database to the Prometheus counters here (`add_capture_counts`).
The Prometheus counters therefore agree with the `CollectorCounter` rows. Worker outcomes,
latencies and batch sizes are counted by the worker itself; the backlog gauges are read from the
capture table at scrape time (see `ops.metrics`).

Conventions: `_total` counters, units in names (`_seconds`), per collector with the label
`collector` (the collector's primary key; `collectors_collector_info` maps it to app and id);
totals are `sum without (collector)` in PromQL.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram

log = logging.getLogger("collectors.metrics")

MATCHED = Counter(
    "collectors_captures_matched_total",
    "Predictions a collector matched (before sampling and rules).",
    ["collector"],
)
SPOOLED = Counter(
    "collectors_captures_spooled_total",
    "Admitted captures written to a host's spool (awaiting the capture agent).",
    ["collector"],
)
ACCEPTED = Counter(
    "collectors_captures_accepted_total",
    "Captures committed to the outbox (state accepted).",
    ["collector"],
)
DROPPED = Counter(
    "collectors_captures_dropped_total",
    "Captures dropped, by reason (sampled_out, rate_limited, backlog_full, discarded, expired...).",
    ["collector", "reason"],
)
FILTERED = Counter(
    "collectors_captures_filtered_total",
    "Captures a pre-queue or post-queue workflow filtered out, by stage (inline or worker).",
    ["collector", "stage"],
)
INGESTED = Counter(
    "collectors_captures_ingested_total",
    "Captures ingested as inputs of the destination app.",
    ["collector"],
)
FAILED = Counter(
    "collectors_captures_failed_total",
    "Captures that ended failed, by Clarifai status code.",
    ["collector", "status"],
)
RETRIED = Counter(
    "collectors_captures_retried_total",
    "Capture attempts that ended in retry (transient error, handed back).",
    ["collector"],
)
INGEST_LATENCY = Histogram(
    "collectors_capture_ingest_latency_seconds",
    "Time from a capture's creation (the prediction) to its end state, by state.",
    ["collector", "state"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)
PREDICT_LATENCY = Histogram(
    "collectors_predict_latency_seconds",
    "Time spent in the dispatch of a prediction RPC, by model id and transport (rest or grpc).",
    ["model", "transport"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CLAIM_BATCH = Histogram(
    "collectors_worker_claim_batch_size",
    "Captures one worker task claimed at once.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
)
SWEEPER_REPUBLISHED = Counter(
    "collectors_sweeper_republished_total",
    "Captures the sweeper published again (the broker lost them or a lease expired).",
)
SWEEPER_RECLAIMED = Counter(
    "collectors_sweeper_reclaimed_total",
    "Captures in processing whose lease had expired, reclaimed by the sweeper.",
)
SWEEPER_EXPIRED = Counter(
    "collectors_sweeper_expired_total",
    "Captures the sweeper ended as expired (older than COLLECTORS_CAPTURE_MAX_AGE_SECONDS).",
)
RETENTION_DELETED = Counter(
    "collectors_retention_deleted_rows_total",
    "Rows the retention job deleted, by table (capture or counter).",
    ["table"],
)

PREDICT_RPCS = frozenset({"PostModelOutputs"})


def _add_one(collector: str, metric: str, n: int) -> None:
    if metric == "matched":
        MATCHED.labels(collector).inc(n)
    elif metric == "spooled":
        SPOOLED.labels(collector).inc(n)
    elif metric == "accepted":
        ACCEPTED.labels(collector).inc(n)
    elif metric == "sampled_out":
        DROPPED.labels(collector, "sampled_out").inc(n)
    elif metric.startswith("filtered_inline"):
        FILTERED.labels(collector, "inline").inc(n)
    elif metric.startswith("dropped:"):
        DROPPED.labels(collector, metric.split(":", 1)[1] or "unknown").inc(n)
    elif metric == "outcome:discarded":
        DROPPED.labels(collector, "discarded").inc(n)
    elif metric == "outcome:expired":
        DROPPED.labels(collector, "expired").inc(n)
    # outcome:ingested / filtered / failed / dropped / retry are counted by the worker itself
    # (`capture_finished`), with their status code and latency.


def add_capture_counts(rows: dict) -> None:
    """Add flushed capture counters ({(collector pk, metric, minute): n}). Never raises."""
    try:
        for (collector_id, metric, _minute), n in rows.items():
            if n > 0:
                _add_one(str(collector_id), str(metric), int(n))
    except Exception:  # metrics must never break the capture path
        log.exception("adding capture counts to the metrics failed")


def capture_finished(
    collector_id, state: str, status_code: int = 0, age_seconds=None, reason: str = ""
) -> None:
    """A worker ended a capture attempt (ingested, filtered, failed, dropped or retry)."""
    try:
        c = str(collector_id)
        state = str(state)
        if state == "ingested":
            INGESTED.labels(c).inc()
        elif state == "filtered":
            FILTERED.labels(c, "worker").inc()
        elif state == "failed":
            FAILED.labels(c, str(int(status_code or 0))).inc()
        elif state == "dropped":
            DROPPED.labels(c, (reason.split(":", 1)[0].strip() or "worker")[:48]).inc()
        elif state == "expired":
            pass  # counted from the counters' "outcome:expired" (claim and sweeper end them too)
        elif state == "retry":
            RETRIED.labels(c).inc()
            return
        if age_seconds is not None and age_seconds >= 0:
            INGEST_LATENCY.labels(c, state).observe(age_seconds)
    except Exception:
        log.exception("recording a capture outcome in the metrics failed")


_predict_children: dict[tuple[str, str], object] = {}


def observe_predict(model_id: str, transport: str, seconds: float) -> None:
    """One prediction RPC took `seconds` (the labelled child is cached: no lookup per call)."""
    key = (model_id[:64] or "-", transport)
    child = _predict_children.get(key)
    if child is None:
        if len(_predict_children) > 10_000:  # bounded whatever model ids clients send
            key = ("other", transport)
        child = _predict_children.setdefault(key, PREDICT_LATENCY.labels(*key))
    child.observe(seconds)
