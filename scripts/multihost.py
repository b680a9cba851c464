#!/usr/bin/env python
"""Multi-host run on one machine: every tier in its own Linux network namespace, a partition.

    sudo COLLECTORS_DEV=1 .venv/bin/python scripts/multihost.py --predictions 400 --seconds 60

Needs root (ip netns). It creates, with names unique to the run (`cmh<id>-...`):
  - a bridge and, per host, a network namespace joined to it by a veth pair; each namespace gets
    one private address (10.77.0.0/24) on its `eth0` and its loopback, and no route out;
  - hosts: `pg` (a private PostgreSQL cluster, initdb into a temporary folder, run as the postgres
    user), `redis` (a private redis-server: broker and counters), `s3` (moto's standalone S3
    server: the media bucket), `web1` and `web2` (gunicorn + the capture agent, each with its own
    spool and Prometheus folder), `work1` and `work2` (a prefork Celery worker each; work2 also
    runs beat, i.e. the sweeper), and `client` (this script's driver: load, checks, oracle).
Flow: migrate and create the tenant and three collectors (100 %, 10 %, 60/min) from the client;
wait until both web hosts answer /readyz and both workers beat; drive predictions against both
web hosts at once; once captures are in flight, partition `work1` (its veth goes down: it
loses PostgreSQL and Redis) for longer than the capture lease (`--partition-seconds`, default
lease + 8 s), then heal it; let everything drain; run the chaos harness's oracle (scripts/chaos.py:
0 lost, 0 duplicated, 0 phantoms) and report the recovery time and the throughput per host
(predictions per web host; captures spooled per web host and ingested per worker host, read from
each host's Prometheus multiprocess folder).
Writes <logdir>/report.json (and prints it); exit 0 only when lost = duplicated = phantoms = 0.
Every process is killed by pid and every namespace, veth and the bridge deleted at the end, also
on failure or SIGTERM (try/finally, atexit, a signal handler); `--cleanup-only RUN_ID` removes
the leftovers of a run killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("COLLECTORS_DEV", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collectors_module.settings")

from chaoslib.procs import Procs, kill_recorded  # noqa: E402
from chaoslib.services import MotoS3, PrivatePostgres, PrivateRedis  # noqa: E402

SUBNET = "10.77.0"
HOSTS = {
    "pg": 2,
    "redis": 3,
    "s3": 4,
    "web1": 11,
    "web2": 12,
    "work1": 21,
    "work2": 22,
    "client": 100,
}
BUCKET = "collectors-media"
WEB_PORT = 8000


def ip(host: str) -> str:
    return f"{SUBNET}.{HOSTS[host]}"


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True)


class Net:
    """The bridge, the namespaces and their veth links of one run."""

    def __init__(self, run_id: str, logdir: Path):
        self.tag = f"cmh{run_id}"
        self.bridge = f"{self.tag}br"
        self.logdir = logdir
        self.made: dict[str, list[str]] = {"netns": [], "links": []}

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def veth(self, host: str) -> str:
        return f"{self.tag}{host}"[:15]

    def prefix(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host)]

    def _record(self) -> None:
        (self.logdir / "net.json").write_text(json.dumps({"tag": self.tag, **self.made}))

    def up(self, hosts) -> None:
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.made["links"].append(self.bridge)
        self._record()
        sh("ip", "link", "set", self.bridge, "up")
        for host in hosts:
            ns, veth, peer = self.ns(host), self.veth(host), f"{self.tag}p{HOSTS[host]}"
            sh("ip", "netns", "add", ns)
            self.made["netns"].append(ns)
            self._record()
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
            self.made["links"].append(veth)
            self._record()
            sh("ip", "link", "set", peer, "netns", ns)
            sh(*self.prefix(host), "ip", "link", "set", peer, "name", "eth0")
            sh(*self.prefix(host), "ip", "addr", "add", f"{ip(host)}/24", "dev", "eth0")
            sh(*self.prefix(host), "ip", "link", "set", "eth0", "up")
            sh(*self.prefix(host), "ip", "link", "set", "lo", "up")
            sh("ip", "link", "set", veth, "master", self.bridge)
            sh("ip", "link", "set", veth, "up")

    def cut(self, host: str) -> None:
        sh("ip", "link", "set", self.veth(host), "down")

    def heal(self, host: str) -> None:
        sh("ip", "link", "set", self.veth(host), "up")

    def cleanup(self) -> None:
        cleanup_tag(self.tag)


def cleanup_tag(tag: str) -> list[str]:
    """Kill what runs in the run's namespaces, delete them, their links and the bridge."""
    removed = []
    for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(f"{tag}-"):
            continue
        for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        for _ in range(50):
            if not sh("ip", "netns", "pids", name, check=False).stdout.split():
                break
            time.sleep(0.1)
        sh("ip", "netns", "del", name, check=False)
        removed.append(name)
    for line in sh("ip", "-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(tag):
                sh("ip", "link", "del", name, check=False)
                removed.append(name)
    return removed


def leftovers(tag: str) -> list[str]:
    names = [
        line.split()[0]
        for line in sh("ip", "netns", "list", check=False).stdout.splitlines()
        if line.split() and line.split()[0].startswith(tag)
    ]
    for line in sh("ip", "-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1 and parts[1].strip().split("@")[0].startswith(tag):
            names.append(parts[1].strip())
    return names


# -- the orchestrator (root namespace) --------------------------------------------------------


def base_env(args, logdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COLLECTORS_FAULT"))}
    env.update(
        {
            "COLLECTORS_DEV": "1",
            "DJANGO_SETTINGS_MODULE": "collectors_module.settings",
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": f"postgres://postgres@{ip('pg')}:5432/collectors",
            "CELERY_BROKER_URL": f"redis://{ip('redis')}:6379/0",
            "REDIS_URL": f"redis://{ip('redis')}:6379/1",
            "AWS_STORAGE_BUCKET_NAME": BUCKET,
            "AWS_S3_ENDPOINT_URL": f"http://{ip('s3')}:5000",
            "AWS_S3_ACCESS_KEY_ID": "testing",
            "AWS_S3_SECRET_ACCESS_KEY": "testing",
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_S3_ADDRESSING_STYLE": "path",
            "ALLOWED_HOSTS": ",".join(ip(h) for h in ("web1", "web2")),
            "METRICS_ALLOWED_NETWORKS": f"{SUBNET}.0/24",
            "COLLECTORS_CAPTURE_HANDOFF": "spool",
            "DB_CONNECT_TIMEOUT": "2",
            "HEALTH_HEARTBEAT_SECONDS": "1",
            "HEALTH_CHECK_TIMEOUT_SECONDS": "1",
            "COLLECTORS_VAR_DIR": str(logdir / "var"),
            # the fault-suite timings (reliability.md §3.1), a short lease
            "CELERY_VISIBILITY_TIMEOUT": str(int(args.lease * 2 + 10)),
            # the lease must outlast a task (system check collectors.E002)
            "CELERY_TASK_TIME_LIMIT": str(max(2, int(args.lease) - 2)),
            "CELERY_TASK_SOFT_TIME_LIMIT": str(max(1, int(args.lease) - 3)),
            "COLLECTORS_LEASE_SECONDS": str(args.lease),
            "COLLECTORS_RETRY_BASE_SECONDS": "1",
            "COLLECTORS_RETRY_MAX_SECONDS": "4",
            "COLLECTORS_MAX_ATTEMPTS": "10",
            "COLLECTORS_SWEEP_SECONDS": "2",
            "COLLECTORS_SWEEP_MIN_AGE_SECONDS": "1",
            "COLLECTORS_SWEEP_ACCEPTED_AGE_SECONDS": "5",
        }
    )
    return env


def orchestrate(args) -> int:
    if os.geteuid() != 0:
        print("multihost.py needs root (ip netns)", file=sys.stderr)
        return 2
    run_id = args.run_id or uuid.uuid4().hex[:4]
    logdir = Path(args.logdir or ROOT / "reports" / f"multihost-{run_id}").resolve()
    logdir.mkdir(parents=True, exist_ok=True)
    for sub in ("var", "web1", "web2", "work1", "work2"):
        (logdir / sub).mkdir(exist_ok=True)
    os.chmod(logdir, 0o755)
    procs = Procs(logdir)
    net = Net(run_id, logdir)
    services: list = []
    done = threading.Event()

    def cleanup() -> None:
        if done.is_set():
            return
        done.set()
        procs.stop_all(grace=5)
        kill_recorded(logdir)
        for s in services:
            with contextlib.suppress(Exception):
                s.stop()
        net.cleanup()
        for s in services:
            if isinstance(s, PrivatePostgres):
                s.destroy()
        left = leftovers(net.tag)
        print(f"cleaned up run {run_id}; left over: {left or 'nothing'}", flush=True)

    atexit.register(cleanup)

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t_begin = time.monotonic()
    try:
        net.up(HOSTS)
        pg = PrivatePostgres(port=5432, host=ip("pg"), prefix=net.prefix("pg"),
                             log=logdir / "postgres.log")  # fmt: skip
        services.append(pg)
        pg.start()
        pg.createdb("collectors")
        redis = PrivateRedis(port=6379, host=ip("redis"), prefix=net.prefix("redis"))
        services.append(redis)
        redis.start()
        s3 = MotoS3(port=5000, host=ip("s3"), prefix=net.prefix("s3"), log=logdir / "moto.log")
        services.append(s3)
        s3.start()
        env = base_env(args, logdir)
        me = [sys.executable, str(Path(__file__).resolve())]
        setup = subprocess.run(
            [*net.prefix("client"), *me, "--role", "setup", "--logdir", str(logdir)],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if setup.returncode != 0:
            print(setup.stdout[-3000:], setup.stderr[-3000:], file=sys.stderr)
            return 1
        for host in ("web1", "web2"):
            henv = dict(
                env,
                COLLECTORS_SPOOL_DIR=str(logdir / host / "spool"),
                PROMETHEUS_MULTIPROC_DIR=str(logdir / host / "prom"),
                DB_APPLICATION_NAME=f"collectors-{host}",
            )
            procs.start(
                f"{host}-gunicorn",
                [*net.prefix(host), sys.executable, "-m", "gunicorn", "-c",
                 "python:collectors_module.ops.gunicorn", "collectors_module.wsgi", "-w",
                 str(args.web_workers), "--threads", "4", "-b", f"{ip(host)}:{WEB_PORT}",
                 "--timeout", "60", "--log-level", "warning"],
                henv,
            )  # fmt: skip
            procs.start(
                f"{host}-agent",
                [*net.prefix(host), sys.executable, "manage.py", "captureagent", "--spool",
                 str(logdir / host / "spool")],
                dict(henv, LOG_LEVEL="INFO"),
            )  # fmt: skip
        for host in ("work1", "work2"):
            henv = dict(
                env,
                PROMETHEUS_MULTIPROC_DIR=str(logdir / host / "prom"),
                DB_APPLICATION_NAME=f"collectors-{host}",
                COLLECTORS_WORKER_PIDFILE_DIR=str(logdir / f"pids-{host}"),
                COLLECTORS_FAULTS="after_enrich:sleep",  # keeps captures in flight a moment
                COLLECTORS_FAULT_SLEEP=str(args.enrich_sleep),
            )
            (logdir / f"pids-{host}").mkdir(exist_ok=True)
            cmd = [*net.prefix(host), sys.executable, "-m", "celery", "-A", "collectors_module",
                   "worker", "--pool", "prefork", "--concurrency", str(args.worker_concurrency),
                   "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                   "--without-heartbeat", "--hostname", f"{host}@%h"]  # fmt: skip
            if host == "work2":  # beat: the sweeper runs on the host that stays connected
                cmd += ["-B", "--schedule", str(logdir / "beat-schedule")]
            procs.start(f"{host}-worker", cmd, henv)
        driver = subprocess.Popen(
            [*net.prefix("client"), *me, "--role", "drive", "--logdir", str(logdir),
             "--predictions", str(args.predictions), "--seconds", str(args.seconds),
             "--concurrency", str(args.concurrency), "--drain-seconds", str(args.drain_seconds)],
            env=env, cwd=ROOT, stdout=open(logdir / "driver.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        procs.all.append(driver)
        partition_seconds = args.partition_seconds or args.lease + 8
        want = logdir / "want-partition"
        while not want.exists():
            if driver.poll() is not None:
                break
            time.sleep(0.1)
        if want.exists():
            started = dt.datetime.now(dt.UTC)
            net.cut(args.partition_host)
            (logdir / "partition.json").write_text(
                json.dumps(
                    {
                        "host": args.partition_host,
                        "started_at": started.isoformat(),
                        "seconds": partition_seconds,
                    }
                )
            )
            print(f"partitioned {args.partition_host} for {partition_seconds:g} s", flush=True)
            time.sleep(partition_seconds)
            net.heal(args.partition_host)
            ended = dt.datetime.now(dt.UTC)
            (logdir / "healed.json").write_text(json.dumps({"ended_at": ended.isoformat()}))
            print(f"healed {args.partition_host}", flush=True)
        code = driver.wait(timeout=args.seconds + args.drain_seconds + 600)
        report_path = logdir / "report.json"
        if report_path.exists():
            report = json.loads(report_path.read_text())
            report["run"]["total_seconds"] = round(time.monotonic() - t_begin, 1)
            report["run"]["run_id"] = run_id
            report_path.write_text(json.dumps(report, indent=2, default=str))
            print(json.dumps(report, indent=2, default=str), flush=True)
        else:
            print((logdir / "driver.log").read_text(errors="replace")[-4000:], file=sys.stderr)
        return code
    finally:
        cleanup()


# -- roles run inside the client namespace ----------------------------------------------------


def role_setup(args) -> int:
    import boto3
    import django

    django.setup()
    from chaos import setup_tenants
    from django.core.management import call_command

    boto3.client(
        "s3", endpoint_url=os.environ["AWS_S3_ENDPOINT_URL"], aws_access_key_id="testing",
        aws_secret_access_key="testing", region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)  # fmt: skip
    call_command("migrate", verbosity=0)
    _user, app, secret, collectors = setup_tenants(uuid.uuid4().hex[:6])
    Path(args.logdir, "tenant.json").write_text(
        json.dumps({"app_pk": app.pk, "secret": secret, "collectors": [c.pk for c in collectors]})
    )
    return 0


def prom_total(folder: Path, name: str) -> float:
    """Sum of a counter over every process of a host (its multiprocess folder)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    if not folder.exists():
        return 0.0
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(folder))
    total = 0.0
    for family in reg.collect():
        for s in family.samples:
            if s.name == name:
                total += s.value
    return total


def wait_http(url: str, timeout: float) -> dict:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            last = exc.read()[:300]
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise TimeoutError(f"{url}: {last}")


def role_drive(args) -> int:
    import django

    django.setup()
    from chaos import Load, oracle, percentile

    from collectors_module.applications.models import App
    from collectors_module.capture.models import TERMINAL_STATES, Capture, CaptureState
    from collectors_module.collectors.models import Collector

    logdir = Path(args.logdir)
    tenant = json.loads((logdir / "tenant.json").read_text())
    app = App.objects.get(pk=tenant["app_pk"])
    collectors = list(Collector.objects.filter(pk__in=tenant["collectors"]))
    webs = {h: f"http://{ip(h)}:{WEB_PORT}" for h in ("web1", "web2")}
    for url in webs.values():
        while True:
            body = wait_http(url + "/readyz", 120)
            if body.get("checks", {}).get("workers", {}).get("fresh", 0) >= 2:
                break
            time.sleep(0.5)
    print("both web hosts ready, both workers beating", flush=True)

    loads = {h: Load(url, tenant["secret"], args.concurrency) for h, url in webs.items()}
    per_host = args.predictions // 2
    started = time.monotonic()
    threads = [
        threading.Thread(target=load.run, args=(per_host, i * per_host, args.seconds))
        for i, load in enumerate(loads.values())
    ]
    for t in threads:
        t.start()

    terminal = {s.value for s in TERMINAL_STATES}
    inflight: list = []
    partition: dict = {}

    def processing() -> list:
        return list(
            Capture.objects.filter(collector__app=app, state=CaptureState.PROCESSING).values_list(
                "pk", flat=True
            )
        )

    # ask for the partition once a third of the load is through and captures are in flight
    while time.monotonic() - started < args.seconds / 3 or not processing():
        if time.monotonic() - started > args.seconds:
            break
        time.sleep(0.05)
    (logdir / "want-partition").write_text("now")
    while not (logdir / "partition.json").exists() and time.monotonic() - started < 120:
        time.sleep(0.01)
    if (logdir / "partition.json").exists():
        partition = json.loads((logdir / "partition.json").read_text())
        inflight = processing()
        print(f"partition: {len(inflight)} captures in flight", flush=True)
    for t in threads:
        t.join()
    load_seconds = time.monotonic() - started
    while not (logdir / "healed.json").exists() and time.monotonic() - started < 600:
        time.sleep(0.1)
    healed = json.loads((logdir / "healed.json").read_text()) if partition else {}
    # drain: every capture terminal (the sweeper republishes what the partition stranded)
    deadline = time.monotonic() + args.drain_seconds
    while time.monotonic() < deadline:
        if not Capture.objects.filter(collector__app=app).exclude(state__in=terminal).exists():
            break
        time.sleep(0.5)
    drained = time.monotonic() - started
    time.sleep(2.5)  # the last counter flushes of the serving processes

    faults = []
    if partition:
        faults.append(
            {
                "kind": f"partition {partition['host']}",
                "seconds": partition["seconds"],
                "started_at": dt.datetime.fromisoformat(partition["started_at"]),
                "ended_at": dt.datetime.fromisoformat(healed["ended_at"]),
            }
        )
    figures = oracle(app, collectors, faults, {0: inflight}, logdir, terminal, Capture)
    hosts = {}
    for h, load in loads.items():
        ok = len(load.latencies)
        hosts[h] = {
            "predictions_ok": ok,
            "prediction_errors": len(load.errors),
            "predictions_per_s": round(ok / load_seconds, 2),
            "predict_p50_ms": round(percentile(load.latencies, 0.5) * 1000, 1),
            "predict_p99_ms": round(percentile(load.latencies, 0.99) * 1000, 1),
            "captures_spooled": prom_total(
                logdir / h / "prom", "collectors_captures_spooled_total"
            ),
            "errors_sample": [e[1] for e in load.errors[:3]],
        }
    for h in ("work1", "work2"):
        ingested = prom_total(logdir / h / "prom", "collectors_captures_ingested_total")
        hosts[h] = {
            "captures_ingested": ingested,
            "ingested_per_s": round(ingested / drained, 2),
            "claimed": prom_total(logdir / h / "prom", "collectors_worker_claim_batch_size_sum"),
        }
    fault = faults[0] if faults else {}
    report = {
        "lost": figures["lost"],
        "duplicated": figures["duplicated"],
        "phantoms": figures["phantoms"],
        "outcome": figures["outcome"],
        "partition": {
            "host": partition.get("host"),
            "seconds": partition.get("seconds"),
            "lease_seconds": float(os.environ["COLLECTORS_LEASE_SECONDS"]),
            "in_flight_at_partition": len(inflight),
            "in_flight_finished": fault.get("in_flight_finished"),
            "in_flight_recovered_s_from_partition": fault.get("in_flight_recovered_s"),
            "first_capture_finished_after_heal_s": fault.get("resume_s"),
            "last_capture_finished_after_heal_s": None,
        },
        "hosts": hosts,
        "redelivery_evidence": figures["redelivery_evidence"],
        "recovery": figures["recovery"],
        "run": {
            "predictions": args.predictions,
            "load_seconds": round(load_seconds, 1),
            "all_terminal_after_s": round(drained, 1),
        },
    }
    if partition:
        heal_at = dt.datetime.fromisoformat(healed["ended_at"])
        last_finish = (
            Capture.objects.filter(collector__app=app)
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
            .first()
        )
        report["partition"]["last_capture_finished_after_heal_s"] = (
            round((last_finish - heal_at).total_seconds(), 1) if last_finish else None
        )
    # valid only when the partition hit captures in flight and the run did real work
    valid = bool(partition) and bool(inflight) and figures["outcome"]["accepted"] > 0
    report["valid"] = valid
    report["prediction_errors"] = sum(h.get("prediction_errors", 0) for h in hosts.values())
    ok = valid and report["lost"] == report["duplicated"] == report["phantoms"] == 0
    ok = ok and report["prediction_errors"] == 0
    report["ok"] = ok
    (logdir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    print("OK" if ok else "FAILED", flush=True)
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--role", default="orchestrate", choices=["orchestrate", "setup", "drive"])
    p.add_argument("--logdir", default="")
    p.add_argument("--run-id", default="", help="4 hex characters (default: random)")
    p.add_argument("--predictions", type=int, default=400, help="in total, half per web host")
    p.add_argument("--seconds", type=float, default=60, help="the load is paced over this")
    p.add_argument("--concurrency", type=int, default=4, help="client threads per web host")
    p.add_argument("--lease", type=float, default=10.0, help="COLLECTORS_LEASE_SECONDS")
    p.add_argument("--partition-host", default="work1", choices=["work1", "work2"])
    p.add_argument("--partition-seconds", type=float, default=0, help="default: lease + 8 s")
    p.add_argument("--enrich-sleep", type=float, default=0.05, help="s per capture in workers")
    p.add_argument("--web-workers", type=int, default=1, help="gunicorn workers per web host")
    p.add_argument("--worker-concurrency", type=int, default=2)
    p.add_argument("--drain-seconds", type=float, default=180)
    p.add_argument("--cleanup-only", default="", metavar="RUN_ID")
    args = p.parse_args()
    if args.cleanup_only:
        print(cleanup_tag(f"cmh{args.cleanup_only}"))
        return 0
    if args.role == "setup":
        return role_setup(args)
    if args.role == "drive":
        return role_drive(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
