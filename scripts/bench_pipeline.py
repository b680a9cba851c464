#!/usr/bin/env python
"""End-to-end throughput and latency of the capture pipeline with real Celery workers.

    COLLECTORS_DEV=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/collectors_bench \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/9 .venv/bin/python scripts/bench_pipeline.py

Setup: one collector (random sample 1.0, no post-queue workflow) on the built-in sentiment model.
Throughput: N accepted captures are committed in chunks (as the capture agent commits them) and
published through the relay while 1, then 2 worker processes (prefork pool) ingest them;
captures/s = N / (publish start -> last finished_at). Latency on an idle system: real
PostModelOutputs calls (REST, in-process client, this process serving) one at a time, handed over
through the spool to a real capture agent process; capture-to-ingest = finished_at - created_at
(the prediction's admission time), p50/p99. The database named in DATABASE_URL is created and
migrated; its captures and inputs of the bench user are deleted first. The broker db is flushed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("COLLECTORS_DEV", "1")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/collectors_bench")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/9")
os.environ.setdefault("REDIS_URL", os.environ["CELERY_BROKER_URL"])
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collectors_module.settings")
SPOOL = ROOT / "var" / "bench" / "spool"
os.environ.setdefault("COLLECTORS_SPOOL_DIR", str(SPOOL))
os.environ.setdefault("COLLECTORS_CAPTURE_HANDOFF", "spool")


def ensure_database(url: str) -> None:
    import psycopg
    from dj_database_url import parse

    cfg = parse(url)
    if not cfg["ENGINE"].endswith("postgresql"):
        return
    admin = psycopg.connect(
        host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, user=cfg["USER"] or None,
        password=cfg["PASSWORD"] or None, dbname="postgres", autocommit=True,
    )  # fmt: skip
    with admin:
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname=%s", [cfg["NAME"]]
        ).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


ensure_database(os.environ["DATABASE_URL"])

import django  # noqa: E402

django.setup()

from clarifai_grpc.grpc.api import resources_pb2  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402

from collectors_module.capture import relay  # noqa: E402
from collectors_module.capture.models import TERMINAL_STATES, Capture, CaptureState  # noqa: E402
from collectors_module.core.protojson import from_dict  # noqa: E402
from collectors_module.inputs.models import Input  # noqa: E402

SENTIMENT = {
    "model_user_id": "builtin",
    "model_app_id": "main",
    "model_id": "sentiment",
    "model_version_id": "996e3c70d6372b1e7e3c10875ebd2b8b",
}
OUTPUT_PB = resources_pb2.Output(
    data=resources_pb2.Data(concepts=[{"id": "positive", "name": "positive", "value": 0.9}])
).SerializeToString()


def setup():
    from collectors_module.accounts.models import User
    from collectors_module.accounts.services import key_create, user_create
    from collectors_module.applications.models import App
    from collectors_module.applications.services import app_create
    from collectors_module.collectors.models import Collector
    from collectors_module.collectors.services import collector_create

    user = User.objects.filter(username="benchuser").first() or user_create(user_id="benchuser")[0]
    app = App.objects.filter(owner=user, public_id="benchapp").first() or app_create(
        owner=user, app_id="benchapp"
    )
    Collector.objects.filter(app=app).delete()
    Input.objects.filter(app=app).delete()
    created = key_create(owner=user, scopes=["All"], description="bench")
    pb = from_dict(
        {
            "id": "bench",
            "pre_queue_random_sample": 1.0,
            "collector_source": {
                "api_post_model_outputs_collector_source": {
                    **SENTIMENT,
                    "post_inputs_key_id": created.key.public_id,
                    "caller_user_id": user.username,
                }
            },
        },
        resources_pb2.Collector,
    )
    collector = collector_create(app=app, actor=user, collector_pb=pb)
    return user, app, collector, created.secret


def start_worker(concurrency: int, logdir: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({"DB_APPLICATION_NAME": "collectors-worker", "PYTHONUNBUFFERED": "1"})
    env.pop("COLLECTORS_FAULTS", None)
    piddir = logdir / f"pids-{uuid.uuid4().hex[:6]}"
    piddir.mkdir(parents=True)
    env["COLLECTORS_WORKER_PIDFILE_DIR"] = str(piddir)
    log = open(logdir / f"worker-{concurrency}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "collectors_module", "worker", "--pool", "prefork",
         "--concurrency", str(concurrency), "--loglevel", "WARNING", "--without-gossip",
         "--without-mingle", "--without-heartbeat", "--hostname", f"bench{uuid.uuid4().hex[:6]}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (piddir / f"main-{proc.pid}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start; see {logdir}")
        time.sleep(0.05)
    proc.piddir = piddir  # type: ignore[attr-defined]
    return proc


def start_agent(logdir: Path) -> subprocess.Popen:
    env = dict(os.environ, DB_APPLICATION_NAME="collectors-agent", LOG_LEVEL="INFO")
    log = open(logdir / "agent.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "captureagent"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while "serving" not in (logdir / "agent.log").read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"capture agent did not start; see {logdir}")
        time.sleep(0.05)
    return proc


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_snapshot(proc: subprocess.Popen) -> dict:
    """CPU used so far by the worker (main + pool children) and its PostgreSQL backends."""
    children = [int(f.name.split("-", 1)[1]) for f in proc.piddir.glob("child-*")]  # type: ignore[attr-defined]
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'collectors-worker' "
            "AND datname = current_database()"
        )
        backends = [r[0] for r in cur.fetchall()]
    return {
        "worker": sum(cpu_seconds(p) for p in [proc.pid, *children]),
        "postgres": sum(cpu_seconds(p) for p in backends),
    }


def wait_done(collector, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = Capture.objects.filter(collector=collector, state__in=TERMINAL_STATES).count()
        if done >= n:
            return True
        time.sleep(0.1)
    return False


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def throughput(collector, user, workers: int, n: int, chunk: int, logdir: Path) -> dict:
    """A backlog of n accepted captures (committed in chunks, as the hook commits them) is
    published through the relay to a running worker; captures/s = n / (publish start -> last
    capture finished)."""
    Capture.objects.filter(collector=collector).delete()
    Input.objects.filter(app=collector.app).delete()
    ids = []
    for start in range(0, n, chunk):
        rows = [
            Capture(
                collector=collector,
                caller=user,
                request_id=uuid.uuid4().hex,
                input_pb=resources_pb2.Data(
                    text=resources_pb2.Text(raw=f"bench capture {start + i} is great")
                ).SerializeToString(),
                output_pb=OUTPUT_PB,
            )
            for i in range(min(chunk, n - start))
        ]
        with transaction.atomic():
            Capture.objects.bulk_create(rows)
        ids.extend(row.pk for row in rows)
    proc = start_worker(workers, logdir)
    try:
        from django.utils import timezone

        cpu_before = cpu_snapshot(proc)
        started_at = timezone.now()
        for capture_id in ids:
            relay.enqueue_publish(capture_id)
        ok = wait_done(collector, n, timeout=max(120, n / 50))
        relay.flush(5)
        cpu_after = cpu_snapshot(proc)
    finally:
        stop_worker(proc)
    qs = Capture.objects.filter(collector=collector)
    states = {s: qs.filter(state=s).count() for s in CaptureState.values}
    last = qs.order_by("-finished_at").values_list("finished_at", flat=True).first()
    span = (last - started_at).total_seconds() if last else float("nan")
    return {
        "worker_processes": workers,
        "captures": n,
        "completed": ok,
        "states": {k: v for k, v in states.items() if v},
        "inputs": Input.objects.filter(app=collector.app).count(),
        "seconds": round(span, 3),
        "captures_per_second": round(n / span, 1) if span else None,
        "cpu_ms_per_capture_worker": round(
            (cpu_after["worker"] - cpu_before["worker"]) * 1000 / n, 3
        ),
        "cpu_ms_per_capture_postgres": round(
            (cpu_after["postgres"] - cpu_before["postgres"]) * 1000 / n, 3
        ),
        "relay": relay.stats(),
    }


def idle_latency(collector, secret: str, n: int, logdir: Path) -> dict:
    Capture.objects.filter(collector=collector).delete()
    Input.objects.filter(app=collector.app).delete()
    client = Client()
    path = (
        f"/v2/users/{SENTIMENT['model_user_id']}/apps/{SENTIMENT['model_app_id']}/models/"
        f"{SENTIMENT['model_id']}/versions/{SENTIMENT['model_version_id']}/outputs"
    )
    proc = start_worker(1, logdir)
    agent = start_agent(logdir)
    predict_ms = []
    try:
        for i in range(n):
            body = json.dumps({"inputs": [{"data": {"text": {"raw": f"idle {i}: a fine day"}}}]})
            t = time.perf_counter()
            r = client.post(
                path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Key {secret}"
            )
            predict_ms.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.content[:300]
            # wait for this capture before the next prediction: an idle system
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if (
                    Capture.objects.filter(collector=collector, state__in=TERMINAL_STATES).count()
                    >= i + 1
                ):
                    break
                time.sleep(0.002)
            else:
                raise SystemExit(f"capture {i} not ingested within 10 s; see {logdir}")
    finally:
        stop_worker(proc)
        stop_worker(agent)
    qs = Capture.objects.filter(collector=collector).exclude(finished_at=None)
    lat = [(f - c).total_seconds() * 1000 for c, f in qs.values_list("created_at", "finished_at")]
    return {
        "captures": len(lat),
        "ingested": qs.filter(state=CaptureState.INGESTED).count(),
        "capture_to_ingest_p50_ms": round(percentile(lat, 0.5), 1),
        "capture_to_ingest_p99_ms": round(percentile(lat, 0.99), 1),
        "capture_to_ingest_max_ms": round(max(lat), 1) if lat else None,
        "predict_p50_ms": round(percentile(predict_ms, 0.5), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--captures", type=int, default=5000)
    parser.add_argument("--chunk", type=int, default=200, help="captures committed per transaction")
    parser.add_argument("--workers", default="1,2", help="worker process counts to measure")
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args()

    import redis

    redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).flushdb()
    call_command("migrate", verbosity=0)
    user, _app, collector, secret = setup()
    logdir = ROOT / "var" / "bench"
    logdir.mkdir(parents=True, exist_ok=True)
    results = {
        "database": connection.settings_dict["NAME"],
        "batch_size": os.environ.get("COLLECTORS_BATCH_SIZE", "250"),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "throughput": [],
    }
    for workers in [int(w) for w in args.workers.split(",") if w]:
        r = throughput(collector, user, workers, args.captures, args.chunk, logdir)
        results["throughput"].append(r)
        print(json.dumps(r), flush=True)
    if args.latency_samples:
        r = idle_latency(collector, secret, args.latency_samples, logdir)
        results["idle_latency"] = r
        print(json.dumps(r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
