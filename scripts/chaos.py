#!/usr/bin/env python
"""Chaos harness: predictions through the real server while workers, Redis and PostgreSQL fail.

    COLLECTORS_DEV=1 .venv/bin/python scripts/chaos.py --seed 7 --predictions 2000 --concurrency 8

Starts its own processes (all killed by pid at the end, even on failure; their pids are also
listed in <logdir>/pids.txt): a private redis-server (the broker, on a free port, no
persistence), gunicorn serving the app (2 workers x 4 threads) spooling its captures in
<logdir>/spool, the capture agent committing them, two Celery workers (prefork, 2 children each)
with the fault-suite timings (visibility 25 s, hard limit 8 s, lease 12 s), and runs the sweeper
itself every 5 s (as beat would; --sweep-seconds, --sweep-min-age). Three collectors watch the
built-in sentiment model: 100% sampling, 10% sampling, and one limited to 60 captures per
minute. The shared Redis is never touched.

Load: a short A/B first (same load, collectors off and on in interleaved blocks), then N
predictions at concurrency C, paced so the load outlasts the fault plan. Faults, on a seeded schedule, each
injected only once the capture table shows work in flight (rows in `processing`):
  - worker SIGKILL of the main process and its children (--kills-main), or of one pool child
    (--kills-child);
  - crash points: the replacement of a killed worker is armed with `<point>:kill@k`
    (--crash-points, default after_claim and after_remote_post), so it kills itself exactly
    between claim and post, or between post and mark-ingested; the web processes are armed with
    `after_spool:kill@k` (right after a capture reached the spool);
  - capture agent SIGKILL while frames wait in the spool (--agent-kills; the agent is paused for
    half a second first so there is a backlog), its replacement armed with
    `agent_after_commit:kill@k` (between the commit of a batch and the record of its offsets)
    or `after_commit_before_publish:kill@k` (between commit and publish), in turn;
  - redis-server kill -9 and restart (--redis-kills), SIGSTOP/SIGCONT (--redis-pause seconds);
  - pg_terminate_backend of the workers' connections (application_name is per run)
    (--pg-sweeps);
  - a destination that fails some posts: `after_enrich:raise%P` (seeded by
    COLLECTORS_FAULTS_SEED) in every worker (--post-failure-pct).

Oracle after the drain (reliability.md §8): capture rows joined with the destination's inputs
(by the provenance metadata's capture id, and by the derived input id): accepted, ingested,
filtered, failed/dropped by reason, admission drops by reason, lost, duplicated, phantoms, the
in-flight work at each fault and its recovery time, predict p50/p99 collectors off vs on, and
prediction errors attributable to capture; and the spool: read to the end, no byte skipped.
Writes reports/reliability-<seed>.json and .md, prints the seed; exits 0 only when the run is
valid and lost = duplicated = phantoms = 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("COLLECTORS_DEV", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collectors_module.settings")

from chaoslib.procs import Procs, RedisServer, free_port, owned_child, wait_port  # noqa: E402

TIMINGS = {
    "CELERY_VISIBILITY_TIMEOUT": "25",
    "CELERY_TASK_TIME_LIMIT": "8",
    "CELERY_TASK_SOFT_TIME_LIMIT": "6",
    "COLLECTORS_LEASE_SECONDS": "12",
    "COLLECTORS_RETRY_BASE_SECONDS": "1",
    "COLLECTORS_RETRY_MAX_SECONDS": "4",
    "COLLECTORS_MAX_ATTEMPTS": "8",
}
SENTIMENT = {
    "model_user_id": "builtin",
    "model_app_id": "main",
    "model_id": "sentiment",
    "model_version_id": "996e3c70d6372b1e7e3c10875ebd2b8b",
}
TEXTS = [
    "I love this, it is wonderful",
    "This is terrible and sad",
    "An ordinary day at the office",
    "What a great result, thank you",
    "The service was slow and rude",
]
# A web-process crash kills the requests that process was serving: these errors come from the
# injected crash, not from capture.
CRASH_ERROR = re.compile(r"RemoteDisconnected|ConnectionReset|BadStatusLine|IncompleteRead|reset")


def percentile(values, q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


class Worker:
    """One `celery worker` (prefork, 2 children); pool children found through their pidfiles."""

    def __init__(self, procs: Procs, env: dict, name: str, faults: str = ""):
        self.piddir = procs.logdir / f"pids-{name}"
        self.piddir.mkdir(exist_ok=True)
        wenv = dict(env, COLLECTORS_WORKER_PIDFILE_DIR=str(self.piddir))
        wenv["COLLECTORS_FAULTS"] = ",".join(x for x in (env.get("COLLECTORS_FAULTS"), faults) if x)
        self.faults = faults
        self.name = name
        self.proc = procs.start(
            name,
            [sys.executable, "-m", "celery", "-A", "collectors_module", "worker", "--pool", "prefork",
             "--concurrency", "2", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--hostname", f"{name}@%h"],
            wenv,
        )  # fmt: skip

    def children(self) -> list[int]:
        """Live pool children (checked to be ours: a dead child's pid may have been reused)."""
        pids = [int(f.name.split("-", 1)[1]) for f in self.piddir.glob("child-*")]
        return [pid for pid in pids if owned_child(pid, self.piddir)]

    def dead_children(self) -> list[int]:
        """Pool children that were started and are gone (a crash point killed itself there)."""
        pids = [int(f.name.split("-", 1)[1]) for f in self.piddir.glob("child-*")]
        return [p for p in pids if p not in set(self.children())]

    def ready(self) -> bool:
        return any(self.piddir.glob("main-*"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill_all(self) -> None:
        for pid in [self.proc.pid, *self.children()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def kill_child(self, rng: random.Random) -> int | None:
        kids = sorted(self.children())
        if not kids:
            return None
        pid = rng.choice(kids)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return pid


class Agent:
    """One `manage.py captureagent` process on the run's spool."""

    def __init__(self, procs: Procs, env: dict, name: str, faults: str = ""):
        aenv = dict(env)
        if faults:
            aenv["COLLECTORS_FAULTS"] = faults
        self.faults = faults
        self.name = name
        self.log_path = procs.logdir / f"{name}.log"
        self.proc = procs.start(name, [sys.executable, "manage.py", "captureagent"], aenv)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def serving(self) -> bool:
        try:
            return "serving" in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def pause(self, stop: bool) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGSTOP if stop else signal.SIGCONT)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def spool_backlog(folder: Path) -> int:
    """Bytes written to the spool that the agent has not recorded as committed."""
    try:
        offsets = json.loads((folder / "agent.offsets").read_text())
    except (OSError, ValueError):
        offsets = {}
    total = 0
    for seg in folder.glob("*.seg"):
        with contextlib.suppress(FileNotFoundError):
            total += max(0, seg.stat().st_size - int(offsets.get(seg.name, 0)))
    return total


def ensure_database(url: str) -> None:
    import psycopg
    from dj_database_url import parse

    cfg = parse(url)
    with psycopg.connect(
        host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, user=cfg["USER"] or None,
        password=cfg["PASSWORD"] or None, dbname="postgres", autocommit=True,
    ) as admin:  # fmt: skip
        if not admin.execute(
            "SELECT 1 FROM pg_database WHERE datname=%s", [cfg["NAME"]]
        ).fetchone():
            admin.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


def setup_tenants(run_id: str):
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.accounts.services import key_create, user_create
    from collectors_module.applications.services import app_create
    from collectors_module.collectors.services import collector_create
    from collectors_module.core.protojson import from_dict

    user, _ = user_create(user_id=f"chaos{run_id}")
    if hasattr(user, "plan"):
        type(user).objects.filter(pk=user.pk).update(plan="professional")
        user.refresh_from_db()
    app = app_create(owner=user, app_id="chaosapp")
    key = key_create(owner=user, scopes=["All"], description="chaos")
    collectors = []
    for cid, sample, limits in (
        ("all", 1.0, None),
        ("tenth", 0.1, None),
        ("limited", 1.0, {"max_per_minute": 60}),
    ):
        pb = from_dict(
            {
                "id": cid,
                "pre_queue_random_sample": sample,
                "collect_outputs": True,
                "collector_source": {
                    "api_post_model_outputs_collector_source": {
                        **SENTIMENT,
                        "post_inputs_key_id": key.key.public_id,
                        "caller_user_id": user.username,
                    }
                },
            },
            resources_pb2.Collector,
        )
        collectors.append(collector_create(app=app, actor=user, collector_pb=pb, limits=limits))
    return user, app, key.secret, collectors


def set_collectors_active(app, collectors, active: bool) -> None:
    from collectors_module.collectors.services import collector_set_status

    for c in collectors:
        collector_set_status(app=app, collector_id=c.public_id, active=active)


class Load:
    """Predictions over HTTP on C threads; optionally paced (request i starts no earlier than
    start + i * interval) so the load lasts as long as the fault plan needs."""

    def __init__(self, base_url: str, secret: str, concurrency: int):
        self.base_url, self.secret, self.concurrency = base_url, secret, concurrency
        s = SENTIMENT
        self.path = (
            f"/v2/users/{s['model_user_id']}/apps/{s['model_app_id']}/models/{s['model_id']}"
            f"/versions/{s['model_version_id']}/outputs"
        )
        self.latencies: list[float] = []
        self.errors: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.interval = 0.0
        self.t0 = 0.0
        self.done = 0

    def one(self, i: int) -> None:
        if self.interval:
            delay = self.t0 + (i - self.first) * self.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        body = json.dumps(
            {"inputs": [{"data": {"text": {"raw": f"{TEXTS[i % len(TEXTS)]} #{i}"}}}]}
        )
        req = urllib.request.Request(
            self.base_url + self.path, data=body.encode(), method="POST",
            headers={"Authorization": f"Key {self.secret}", "Content-Type": "application/json"},
        )  # fmt: skip
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                payload = json.loads(resp.read())
            ok = payload.get("status", {}).get("code") == 10000
            err = "" if ok else f"status {payload.get('status')}"
        except urllib.error.HTTPError as exc:
            err = f"HTTP {exc.code}: {exc.read()[:150]!r}"
        except (urllib.error.URLError, OSError, ValueError, Exception) as exc:
            err = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        with self.lock:
            self.done += 1
            if err:
                self.errors.append((time.monotonic(), err[:200]))
            else:
                self.latencies.append(elapsed)

    def run(self, n: int, start: int = 0, seconds: float = 0.0) -> None:
        self.interval = seconds / n if seconds and n else 0.0
        self.t0, self.first = time.monotonic(), start
        with ThreadPoolExecutor(self.concurrency) as pool:
            list(pool.map(self.one, range(start, start + n)))
        self.interval = 0.0


def build_plan(args, rng: random.Random) -> list[str]:
    plan = ["kill_main"] * args.kills_main + ["kill_child"] * args.kills_child
    plan += ["redis_kill"] * args.redis_kills + ["pg_terminate"] * args.pg_sweeps
    plan += ["agent_kill"] * args.agent_kills
    if args.redis_pause > 0:
        plan.append("redis_pause")
    rng.shuffle(plan)
    return plan


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--predictions", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--ab-predictions", type=int, default=200, help="per side of the off/on A/B"
    )
    parser.add_argument("--kills-main", type=int, default=3)
    parser.add_argument("--kills-child", type=int, default=2)
    parser.add_argument(
        "--crash-points",
        default="after_claim,after_remote_post",
        help="worker crash points armed (kill@k) on the replacements of main-killed workers",
    )
    parser.add_argument("--web-crash", type=int, default=1, help="arm after_spool in the web")
    parser.add_argument("--agent-kills", type=int, default=2, help="capture agent SIGKILLs")
    parser.add_argument("--redis-kills", type=int, default=1)
    parser.add_argument("--redis-pause", type=float, default=20.0, help="SIGSTOP seconds (0: none)")
    parser.add_argument("--pg-sweeps", type=int, default=2)
    parser.add_argument("--post-failure-pct", type=float, default=5.0)
    parser.add_argument(
        "--enrich-sleep", type=float, default=0.01, help="slow enrichment per capture (s)"
    )
    parser.add_argument("--sweep-seconds", type=float, default=5.0, help="sweeper interval")
    parser.add_argument(
        "--sweep-min-age", type=float, default=10.0, help="sweeper: republish rows quiet this long"
    )
    parser.add_argument("--database", default="chaos_run")
    parser.add_argument("--database-url", default="", help="full URL (overrides --database)")
    parser.add_argument("--drain-timeout", type=float, default=180)
    parser.add_argument("--reports", default=str(ROOT / "reports"))
    parser.add_argument("--logdir", default="")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    random.seed(args.seed)
    print(f"chaos seed={args.seed}", flush=True)

    pg = os.environ.get("CHAOS_PG", "postgres://postgres@127.0.0.1:5432")
    db_url = args.database_url or f"{pg}/{args.database}"
    ensure_database(db_url)
    logdir = Path(args.logdir) if args.logdir else ROOT / "var" / f"chaos-{args.seed}"
    logdir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (logdir / "pids.txt").unlink()
    procs = Procs(logdir)
    try:
        return run(args, rng, db_url, logdir, procs)
    finally:
        procs.stop_all()


def run(args, rng: random.Random, db_url: str, logdir: Path, procs: Procs) -> int:
    redis_srv = RedisServer(procs)
    redis_srv.start()
    os.environ.update(
        {"DATABASE_URL": db_url, "CELERY_BROKER_URL": redis_srv.url(), "REDIS_URL": redis_srv.url()}
    )
    os.environ.update(TIMINGS)
    os.environ.pop("COLLECTORS_FAULTS", None)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import close_old_connections, connection
    from django.utils import timezone

    from collectors_module.capture.models import TERMINAL_STATES, Capture, CaptureState

    call_command("migrate", verbosity=0)
    run_id = uuid.uuid4().hex[:6]
    _user, app, secret, collectors = setup_tenants(run_id)

    spool_dir = logdir / "spool"
    base_env = dict(os.environ)
    base_env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "COLLECTORS_CAPTURE_HANDOFF": "spool",
            "COLLECTORS_SPOOL_DIR": str(spool_dir),
        }
    )
    base_env.pop("COLLECTORS_FAULTS", None)
    web_port = free_port()
    # the Nth spooled capture of a web process: past the A/B phase, so the crash lands in the
    # chaos phase
    web_fault_nth = args.ab_predictions // 2 + rng.randint(20, 60)
    web_env = dict(base_env, DB_APPLICATION_NAME=f"collectors-web-{run_id}")
    if args.web_crash:
        web_env["COLLECTORS_FAULTS"] = f"after_spool:kill@{web_fault_nth}"
    agent_env = dict(base_env, DB_APPLICATION_NAME=f"collectors-agent-{run_id}", LOG_LEVEL="INFO")
    agents = [Agent(procs, agent_env, "agent-0")]
    procs.start(
        "web",
        [sys.executable, "-m", "gunicorn", "collectors_module.wsgi", "-w", "2", "--threads", "4",
         "-b", f"127.0.0.1:{web_port}", "--timeout", "60", "--log-level", "info"],
        web_env,
    )  # fmt: skip
    wait_port(web_port)
    worker_app_name = f"collectors-worker-{run_id}"
    worker_faults = ["after_enrich:sleep"]
    if args.post_failure_pct > 0:
        worker_faults.append(f"after_enrich:raise%{args.post_failure_pct:g}")
    worker_env = dict(
        base_env,
        DB_APPLICATION_NAME=worker_app_name,
        COLLECTORS_FAULTS=",".join(worker_faults),
        COLLECTORS_FAULTS_SEED=str(args.seed),
        COLLECTORS_FAULT_SLEEP=str(args.enrich_sleep),
    )
    crash_points = [p for p in args.crash_points.split(",") if p]
    workers = [Worker(procs, worker_env, f"w{i}") for i in range(2)]
    deadline = time.monotonic() + 60
    while not all(w.ready() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    load = Load(f"http://127.0.0.1:{web_port}", secret, args.concurrency)
    faults: list[dict] = []
    inflight_ids: dict[int, list] = {}
    figures: dict = {"seed": args.seed}
    t_start = time.monotonic()

    def processing_ids() -> list:
        return list(
            Capture.objects.filter(collector__app=app, state=CaptureState.PROCESSING).values_list(
                "pk", flat=True
            )
        )

    def wait_in_flight(timeout: float = 10.0) -> list:
        until = time.monotonic() + timeout
        ids = processing_ids()
        while not ids and time.monotonic() < until:
            time.sleep(0.01)
            ids = processing_ids()
        return ids

    def fault(kind: str, ids: list | None, started_at=None, **detail) -> dict:
        f = {"kind": kind, "at_s": round(time.monotonic() - t_start, 2), **detail}
        f["started_at"] = started_at or timezone.now()
        if ids is not None:
            f["in_flight_at_fault"] = len(ids)
            inflight_ids[len(faults)] = ids
        f["ended_at"] = timezone.now()
        faults.append(f)
        shown = {k: v for k, v in f.items() if k not in ("ended_at", "started_at")}
        print("fault", json.dumps(shown, default=str), flush=True)
        return f

    # -- A/B: collectors off vs on, same load, interleaved in blocks (off on on off ...) ---------
    set_collectors_active(app, collectors, False)
    time.sleep(1.5)
    load.run(20, 900_000)  # warm up
    side = {False: {"lat": [], "err": 0}, True: {"lat": [], "err": 0}}
    blocks = 4
    per_block = max(1, args.ab_predictions // (blocks // 2))
    state = False
    for b in range(blocks):
        active = (b % 4) in (1, 2)
        if active != state:
            set_collectors_active(app, collectors, active)
            time.sleep(1.5)  # the matching index notices the change
            state = active
        load.latencies.clear()
        load.errors.clear()
        load.run(per_block, 100_000 + b * per_block)
        side[active]["lat"] += load.latencies
        side[active]["err"] += len(load.errors)
    if not state:
        set_collectors_active(app, collectors, True)
        time.sleep(1.5)
    off, on = side[False]["lat"], side[True]["lat"]
    errors_off, errors_on = side[False]["err"], side[True]["err"]
    figures["predict_ab"] = {
        "n_per_side": args.ab_predictions,
        "off_p50_ms": ms(percentile(off, 0.5)),
        "off_p99_ms": ms(percentile(off, 0.99)),
        "on_p50_ms": ms(percentile(on, 0.5)),
        "on_p99_ms": ms(percentile(on, 0.99)),
        "errors_off": errors_off,
        "errors_on": errors_on,
    }
    print("A/B", json.dumps(figures["predict_ab"]), flush=True)

    # -- chaos: paced load in the background, faults on a seeded schedule --------------------------
    plan = build_plan(args, rng)
    gaps = [rng.uniform(2.0, 4.0) for _ in plan]
    planned = sum(gaps) + args.redis_pause + 6 * args.redis_kills + 10
    t_start = time.monotonic()
    load.latencies.clear()
    load.errors.clear()
    loader = threading.Thread(
        target=load.run, args=(args.predictions, 0, planned), daemon=True, name="load"
    )
    loader.start()

    stop_sweeper = threading.Event()
    sweeps = {"runs": 0, "republished": 0, "errors": 0}

    def sweeper_loop() -> None:
        from collectors_module.capture.sweeper import sweep

        while not stop_sweeper.wait(args.sweep_seconds):
            try:
                r = sweep(min_age=args.sweep_min_age)
                sweeps["runs"] += 1
                sweeps["republished"] += int(r.get("republished", 0) or 0)
            except Exception:
                sweeps["errors"] += 1
            close_old_connections()

    threading.Thread(target=sweeper_loop, daemon=True, name="sweeper").start()

    armed: list[dict] = []  # crash-point workers waiting to die at their point
    pending_points = list(crash_points)

    def check_armed() -> None:
        for a in list(armed):
            w = a["worker"]
            if w.dead_children() or not w.alive():
                armed.remove(a)
                ids = processing_ids()
                fault(f"crash_point_{a['point']}", ids, worker=w.name, nth=a["nth"],
                      died_at_point=True)  # fmt: skip
                # replace it (its other children would die at their own Nth hit too)
                w.kill_all()
                idx = workers.index(w)
                workers[idx] = Worker(procs, worker_env, f"{w.name}-r")

    restarts: list[dict] = []

    agent_points = ["agent_after_commit", "after_commit_before_publish"]

    def supervise_agent() -> None:
        """A dead agent is replaced (a crash point that fired counts as its fault)."""
        a = agents[-1]
        if a.alive():
            return
        if a.faults:
            fault(f"crash_point_{a.faults.split(':')[0]}", None, agent=a.name, died_at_point=True)
        agents.append(Agent(procs, agent_env, f"agent-{len(agents)}"))

    def supervise() -> None:
        """Restart a worker whose main process exited (as systemd Restart=always would)."""
        supervise_agent()
        check_armed()
        for j, w in enumerate(workers):
            if not w.alive():
                log = (procs.logdir / f"{w.name}.log").read_text(errors="replace")
                restarts.append(
                    {"at_s": round(time.monotonic() - t_start, 2), "worker": w.name,
                     "exit_code": w.proc.returncode,
                     "unrecoverable_error": "Unrecoverable error" in log}
                )  # fmt: skip
                print("supervisor: restart", json.dumps(restarts[-1]), flush=True)
                w.kill_all()
                workers[j] = Worker(procs, worker_env, f"w{j}-s{len(restarts)}")

    def pause(seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            time.sleep(min(0.2, max(0.0, until - time.monotonic())))
            supervise()

    for action, gap in zip(plan, gaps, strict=True):
        pause(gap)
        # faults land on a worker that is not armed with a crash point (that one must die there)
        candidates = [
            j for j, w in enumerate(workers) if not any(a["worker"] is w for a in armed)
        ] or list(range(len(workers)))
        i = rng.choice(candidates)
        for a in [a for a in armed if a["worker"] is workers[i]]:
            armed.remove(a)
            pending_points.insert(0, a["point"])
        if action in ("kill_main", "kill_child"):
            # kill a worker that is up (a just-restarted one may still be booting)
            for _ in range(50):
                if workers[i].ready() and workers[i].alive():
                    break
                time.sleep(0.1)
        ids = wait_in_flight()
        t0 = timezone.now()
        if action == "kill_main":
            w = workers[i]
            w.kill_all()
            f = fault("worker_kill_main", ids, started_at=t0, worker=w.name, pid=w.proc.pid)
            point = pending_points.pop(0) if pending_points else ""
            if point:
                nth = rng.randint(2, 5)
                workers[i] = Worker(procs, worker_env, f"w{i}-{len(faults)}", f"{point}:kill@{nth}")
                armed.append({"worker": workers[i], "point": point, "nth": nth})
                f["replacement_armed"] = f"{point}:kill@{nth}"
            else:
                workers[i] = Worker(procs, worker_env, f"w{i}-{len(faults)}")
        elif action == "kill_child":
            pid = workers[i].kill_child(rng)
            fault("worker_kill_child", ids, started_at=t0, worker=workers[i].name, pid=pid)
        elif action == "redis_kill":
            redis_srv.kill()
            down = rng.uniform(2, 5)
            pause(down)
            redis_srv.start()
            fault("redis_kill9_restart", ids, started_at=t0, down_s=round(down, 1))
        elif action == "redis_pause":
            redis_srv.pause(True)
            pause(args.redis_pause)
            redis_srv.pause(False)
            fault("redis_sigstop", ids, started_at=t0, paused_s=args.redis_pause)
        elif action == "agent_kill":
            # an armed replacement dies at its crash point first (supervise records it)
            until = time.monotonic() + 15
            while agents[-1].faults and agents[-1].alive() and time.monotonic() < until:
                pause(0.2)
            supervise_agent()
            a = agents[-1]
            for _ in range(50):  # a just-restarted agent may still be booting
                if a.serving():
                    break
                time.sleep(0.1)
            a.pause(True)  # frames pile up in the spool: the kill lands on work in flight
            backlog, until = 0, time.monotonic() + 20  # web processes may be restarting
            while backlog == 0 and time.monotonic() < until:
                time.sleep(0.1)
                backlog = spool_backlog(spool_dir)
            a.kill()
            f = fault(
                "agent_kill", None, started_at=t0, agent=a.name, spool_backlog_bytes=backlog,
                segments=len(list(spool_dir.glob("*.seg"))), predictions_done=load.done,
            )  # fmt: skip
            f["in_flight_at_fault"] = 1 if backlog > 0 else 0
            point = agent_points.pop(0) if agent_points else ""
            nth = rng.randint(2, 6)
            agents.append(
                Agent(
                    procs, agent_env, f"agent-{len(agents)}", f"{point}:kill@{nth}" if point else ""
                )
            )
            if point:
                f["replacement_armed"] = f"{point}:kill@{nth}"
        elif action == "pg_terminate":
            # a sweep: terminate the workers' backends for ~2 s (a restarted worker may not have
            # connected yet, so keep going until some were terminated)
            n, rounds, until = 0, 0, time.monotonic() + 8
            while time.monotonic() < until and (rounds < 10 or n == 0):
                with connection.cursor() as cur:
                    cur.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = %s AND datname = current_database()",
                        [worker_app_name],
                    )
                    n += cur.fetchone()[0]
                rounds += 1
                time.sleep(0.2)
            fault("pg_terminate_workers", ids, started_at=t0, backends=n, rounds=rounds)
        supervise()
    # crash points not reached yet: keep going while the load lasts
    while armed and loader.is_alive():
        pause(0.2)
    while loader.is_alive():
        pause(0.5)
    loader.join()
    load_seconds = time.monotonic() - t_start
    supervise()
    chaos_latencies = list(load.latencies)
    chaos_errors = list(load.errors)

    # -- drain: workers without crash points; the sweeper keeps going ------------------------------
    for a in armed:
        fault(f"crash_point_{a['point']}", None, worker=a["worker"].name, nth=a["nth"],
              died_at_point=False)  # fmt: skip
    armed.clear()
    for j, w in enumerate(workers):
        if w.faults or not w.alive():
            w.kill_all()
            workers[j] = Worker(procs, worker_env, f"w{j}-drain")
    if agents[-1].faults or not agents[-1].alive():
        if agents[-1].faults and not agents[-1].alive():
            supervise_agent()
        else:
            if agents[-1].faults:
                fault(f"crash_point_{agents[-1].faults.split(':')[0]}", None,
                      agent=agents[-1].name, died_at_point=False)  # fmt: skip
            agents[-1].kill()
            agents.append(Agent(procs, agent_env, f"agent-{len(agents)}-drain"))
    drain_started = time.monotonic()
    deadline = drain_started + args.drain_timeout
    pending = -1
    while time.monotonic() < deadline:
        pending = (
            Capture.objects.filter(collector__app=app).exclude(state__in=TERMINAL_STATES).count()
        )
        if pending == 0 and spool_backlog(spool_dir) == 0:
            break
        pause(1)
    drain_seconds = time.monotonic() - drain_started
    stop_sweeper.set()
    from collectors_module.capture import counters

    with contextlib.suppress(Exception):
        counters.flush()
    time.sleep(2.5)  # the web processes' counter flushers (every 2 s)

    web_log = (logdir / "web.log").read_text(errors="replace")
    web_kills = len(re.findall(r"was sent SIGKILL|exited with code|signal 9", web_log))
    booted = web_log.count("Booting worker with pid")
    web_kills = max(web_kills, booted - 2)
    if args.web_crash:
        fault("crash_point_after_spool", None, count=web_kills,
              nth=web_fault_nth, died_at_point=web_kills > 0)  # fmt: skip

    figures.update(
        oracle(app, collectors, faults, inflight_ids, procs.logdir, TERMINAL_STATES, Capture)
    )
    agent_logs = "".join(p.read_text(errors="replace") for p in logdir.glob("agent-*.log"))
    figures["spool"] = {
        "backlog_bytes_at_end": spool_backlog(spool_dir),
        "segments_left": len(list(spool_dir.glob("*.seg"))),
        "skipped_byte_reports": agent_logs.count("unreadable bytes skipped"),
        "bad_frames": agent_logs.count("bad frame"),
        "agents_started": len(agents),
    }
    spool_ok = (
        figures["spool"]["backlog_bytes_at_end"] == 0
        and figures["spool"]["skipped_byte_reports"] == 0
        and figures["spool"]["bad_frames"] == 0
    )
    # -- predict path under chaos ---------------------------------------------------------------------
    crash_errors = [e for e in chaos_errors if CRASH_ERROR.search(e[1])] if web_kills else []
    crash_errors = crash_errors[: web_kills * 8]
    other_errors = [e for e in chaos_errors if e not in crash_errors]
    attributable = len(other_errors) + max(0, errors_on - errors_off)
    figures["predict_under_chaos"] = {
        "ok": len(chaos_latencies),
        "errors": len(chaos_errors),
        "errors_from_web_crash": len(crash_errors),
        "error_samples": [e[1] for e in chaos_errors[:5]],
        "p50_ms": ms(percentile(chaos_latencies, 0.5)),
        "p99_ms": ms(percentile(chaos_latencies, 0.99)),
        "max_ms": ms(max(chaos_latencies, default=0)),
    }
    figures["attributable_errors"] = attributable
    figures["recovery"]["drain_seconds"] = round(drain_seconds, 1)
    figures["recovery"]["pending_at_deadline"] = max(0, pending)
    figures["sweeper"] = sweeps
    figures["worker_restarts"] = restarts

    import celery
    import kombu

    with connection.cursor() as cur:
        cur.execute("SHOW server_version")
        pg_version = cur.fetchone()[0]
    figures["run"] = {
        "seed": args.seed,
        "predictions": args.predictions,
        "concurrency": args.concurrency,
        "collectors": ["all (100%)", "tenth (10%)", "limited (60/min)"],
        "load_seconds": round(load_seconds, 1),
        "planned_load_seconds": round(planned, 1),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "versions": {
            "django": django.get_version(),
            "celery": celery.__version__,
            "kombu": kombu.__version__,
            "python": sys.version.split()[0],
            "postgresql": pg_version,
            "redis": subprocess.run(
                ["redis-server", "--version"], capture_output=True, text=True
            ).stdout.strip(),
        },
        "settings": TIMINGS
        | {
            "prefetch_multiplier": 1,
            "acks_late": True,
            "reject_on_worker_lost": True,
            "post_failure_pct": args.post_failure_pct,
            "enrich_sleep_s": args.enrich_sleep,
            "sweep_seconds": args.sweep_seconds,
            "sweep_min_age_s": args.sweep_min_age,
        },
    }
    faults_out = []
    for f in faults:
        g = dict(f)
        g.pop("ended_at", None)
        g.pop("started_at", None)
        faults_out.append(g)
    figures["faults"] = faults_out
    invalid = [
        f
        for f in faults_out
        if (f["kind"].startswith("crash_point") and not f.get("died_at_point"))
        or (not f["kind"].startswith("crash_point") and f.get("in_flight_at_fault", 0) <= 0)
    ]
    figures["invalid_faults"] = invalid
    figures["valid"] = bool(faults_out) and not invalid
    ok = (
        figures["valid"]
        and spool_ok
        and figures["lost"] == 0
        and figures["duplicated"] == 0
        and figures["phantoms"] == 0
        and attributable == 0
    )
    figures["passed"] = ok
    write_reports(Path(args.reports), args.seed, figures)
    print(f"chaos seed={args.seed} valid={figures['valid']} passed={ok}", flush=True)
    return 0 if ok else 1


def oracle(app, collectors, faults, inflight_ids, logdir, terminal, Capture) -> dict:
    """Join the capture rows with the destination's inputs (reliability.md §8)."""
    from collectors_module.capture.selectors import collector_stats
    from collectors_module.capture.worker import destination_input_id
    from collectors_module.inputs.models import Input

    rows = list(
        Capture.objects.filter(collector__app=app).values_list(
            "pk", "collector__public_id", "state", "reason", "attempts", "created_at", "finished_at"
        )
    )
    by_pk = {r[0]: r for r in rows}
    inputs = list(
        Input.objects.filter(app=app).values_list(
            "public_id", "data__metadata__collector__capture_id"
        )
    )
    copies_by_provenance: dict[str, int] = {}
    copies_by_id: dict[str, int] = {}
    for public_id, cap_id in inputs:
        copies_by_id[public_id] = copies_by_id.get(public_id, 0) + 1
        if cap_id:
            copies_by_provenance[str(cap_id)] = copies_by_provenance.get(str(cap_id), 0) + 1
    known = {str(r[0]) for r in rows}
    by_state: dict[str, int] = {}
    reasons: dict[str, dict[str, int]] = {}
    for r in rows:
        by_state[r[2]] = by_state.get(r[2], 0) + 1
        if r[2] not in ("ingested",):
            bucket = reasons.setdefault(r[2], {})
            key = re.sub(r"[0-9a-f]{8,}", "…", (r[3] or "(no reason)").split(":")[0])[:60]
            bucket[key] = bucket.get(key, 0) + 1
    pending = [r for r in rows if r[2] not in terminal]
    ingested_missing = [
        r
        for r in rows
        if r[2] == "ingested"
        and copies_by_provenance.get(str(r[0]), 0) == 0
        and copies_by_id.get(destination_input_id(r[0]), 0) == 0
    ]
    duplicated = sum(
        max(0, max(copies_by_provenance.get(str(r[0]), 0), copies_by_id.get(destination_input_id(r[0]), 0)) - 1)
        for r in rows
    )  # fmt: skip
    phantoms = sum(1 for _pid, cap_id in inputs if not cap_id or str(cap_id) not in known)
    phantoms += sum(1 for r in rows if r[2] != "ingested" and copies_by_provenance.get(str(r[0])))
    no_reason = sum(1 for r in rows if r[2] in terminal and r[2] != "ingested" and not r[3])

    lat = [(r[6] - r[5]).total_seconds() for r in rows if r[6] is not None and r[2] == "ingested"]
    attempts = [r[4] for r in rows]
    histogram: dict[int, int] = {}
    for a in attempts:
        histogram[a] = histogram.get(a, 0) + 1

    # per fault: time to the first capture finished after it (consumption resumed) and until
    # every capture that was in flight at that moment had finished
    finished = sorted(r[6] for r in rows if r[6] is not None)
    import bisect

    for idx, f in enumerate(faults):
        end = f.get("ended_at")
        if end is None:
            continue
        k = bisect.bisect_right(finished, end)
        f["resume_s"] = round((finished[k] - end).total_seconds(), 2) if k < len(finished) else None
        ids = inflight_ids.get(idx) or []
        done = [by_pk[i][6] for i in ids if i in by_pk and by_pk[i][6] is not None]
        begin = f.get("started_at") or end
        if ids:
            f["in_flight_finished"] = f"{len(done)}/{len(ids)}"
            f["in_flight_recovered_s"] = (
                round(max(0.0, max((d - begin).total_seconds() for d in done)), 2)
                if len(done) == len(ids)
                else None
            )
    recov = [f.get("in_flight_recovered_s") for f in faults if f.get("in_flight_recovered_s")]

    stats = {c.public_id: collector_stats(c) for c in collectors}
    admission: dict[str, dict] = {}
    drops: dict[str, int] = {}
    for cid, s in stats.items():
        admission[cid] = {
            k: s.get(k)
            for k in ("matched", "sampled_out", "dropped", "accepted", "drops_by_reason")
        }
        if s.get("sampled_out"):
            drops["sampled_out"] = drops.get("sampled_out", 0) + int(s["sampled_out"])
        for reason, n in (s.get("drops_by_reason") or {}).items():
            drops[reason] = drops.get(reason, 0) + int(n)

    logs = "".join(p.read_text(errors="replace") for p in Path(logdir).glob("w*.log"))
    return {
        "admission": admission,
        "dropped_before_acceptance_by_reason": drops,
        "outcome": {
            "accepted": len(rows),
            "ingested": by_state.get("ingested", 0),
            "filtered": by_state.get("filtered", 0),
            "failed": by_state.get("failed", 0),
            "dropped_after_acceptance": by_state.get("dropped", 0),
            "expired": by_state.get("expired", 0),
            "by_state": by_state,
            "reasons_by_state": reasons,
            "terminal_without_reason": no_reason,
        },
        "destination_inputs": len(inputs),
        "lost": len(pending) + len(ingested_missing),
        "lost_detail": {
            "not_terminal": len(pending),
            "ingested_without_input": len(ingested_missing),
        },
        "duplicated": duplicated,
        "phantoms": phantoms,
        "redelivery_evidence": {
            "captures_with_attempts_ge_2": sum(1 for a in attempts if a >= 2),
            "attempts_histogram": {str(k): v for k, v in sorted(histogram.items())},
            "max_attempts": max(attempts, default=0),
            "injected_post_failures": logs.count("InjectedFault"),
            "worker_lost_errors": logs.count("WorkerLostError"),
        },
        "recovery": {
            "worst_in_flight_recovered_s": max(recov, default=None),
            "capture_to_ingest_p50_ms": ms(percentile(lat, 0.5)),
            "capture_to_ingest_p99_ms": ms(percentile(lat, 0.99)),
            "capture_to_ingest_max_ms": ms(max(lat, default=0)),
        },
    }


def write_reports(reports: Path, seed: int, figures: dict) -> None:
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"reliability-{seed}.json").write_text(json.dumps(figures, indent=2, default=str))
    ab, out, run_ = figures["predict_ab"], figures["outcome"], figures["run"]
    kinds: dict[str, int] = {}
    for f in figures["faults"]:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + int(f.get("count", 1) or 0)
    chaos = figures["predict_under_chaos"]
    ev = figures["redelivery_evidence"]
    md = [
        f"# Reliability run, seed {seed}",
        "",
        f"`{run_['command']}`",
        "",
        f"{run_['predictions']} predictions at concurrency {run_['concurrency']} over "
        f"{run_['load_seconds']} s, 3 collectors (100%, 10%, 60/min); faults: "
        + ", ".join(f"{k} x{v}" for k, v in kinds.items())
        + f"; injected post failures {run_['settings']['post_failure_pct']}%.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| accepted | {out['accepted']} |",
        f"| ingested / filtered / failed / dropped / expired | {out['ingested']} / {out['filtered']}"
        f" / {out['failed']} / {out['dropped_after_acceptance']} / {out['expired']} |",
        f"| non-ingested reasons | {out['reasons_by_state']} |",
        f"| dropped before acceptance | {figures['dropped_before_acceptance_by_reason']} |",
        f"| **lost** | **{figures['lost']}** |",
        f"| **duplicated** | **{figures['duplicated']}** |",
        f"| **phantoms** | **{figures['phantoms']}** |",
        f"| faults with in-flight work | "
        f"{len(figures['faults']) - len(figures['invalid_faults'])} / {len(figures['faults'])} |",
        f"| re-executed captures (attempts >= 2) / max attempts | "
        f"{ev['captures_with_attempts_ge_2']} / {ev['max_attempts']} |",
        f"| injected post failures seen / worker-lost errors | {ev['injected_post_failures']} / "
        f"{ev['worker_lost_errors']} |",
        f"| sweeper re-publishes | {figures['sweeper']['republished']} |",
        f"| spool at the end: backlog bytes / segments left / skipped-byte reports | "
        f"{figures['spool']['backlog_bytes_at_end']} / {figures['spool']['segments_left']} / "
        f"{figures['spool']['skipped_byte_reports']} (capture agents started: "
        f"{figures['spool']['agents_started']}) |",
        f"| workers restarted by the supervisor (exited by themselves) | "
        f"{len(figures['worker_restarts'])} "
        f"({sum(1 for r in figures['worker_restarts'] if r['unrecoverable_error'])} after a "
        f"Celery 'Unrecoverable error') |",
        f"| worst recovery of in-flight work (s) | "
        f"{figures['recovery']['worst_in_flight_recovered_s']} |",
        f"| drain after load (s) | {figures['recovery']['drain_seconds']} |",
        f"| capture-to-ingest p50 / p99 (ms) | {figures['recovery']['capture_to_ingest_p50_ms']} / "
        f"{figures['recovery']['capture_to_ingest_p99_ms']} |",
        f"| predict p50 / p99 off -> on (ms) | {ab['off_p50_ms']} / {ab['off_p99_ms']} -> "
        f"{ab['on_p50_ms']} / {ab['on_p99_ms']} |",
        f"| predict p50 / p99 under chaos (ms) | {chaos['p50_ms']} / {chaos['p99_ms']} |",
        f"| predict errors off / on / chaos (from web crash) | {ab['errors_off']} / "
        f"{ab['errors_on']} / {chaos['errors']} ({chaos['errors_from_web_crash']}) |",
        f"| **errors attributable to capture** | **{figures['attributable_errors']}** |",
        f"| valid | {figures['valid']} |",
        f"| **passed** | **{figures['passed']}** |",
        "",
        "## Faults",
        "",
        "| at (s) | fault | in flight | in-flight finished | all in-flight done after (s) | "
        "consumption resumed after (s) |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures["faults"]:
        md.append(
            f"| {f['at_s']} | {f['kind']} | {f.get('in_flight_at_fault', '-')} | "
            f"{f.get('in_flight_finished', '-')} | {f.get('in_flight_recovered_s', '-')} | "
            f"{f.get('resume_s', '-')} |"
        )
    (reports / f"reliability-{seed}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md), flush=True)


if __name__ == "__main__":
    sys.exit(main())
