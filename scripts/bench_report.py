#!/usr/bin/env python
"""One benchmark report: every performance figure of the Collectors issue in one run, one table.

    COLLECTORS_DEV=1 .venv/bin/python scripts/bench_report.py [--quick]

Runs the existing benchmark scripts as subprocesses (their own figures, parsed from --json or
their printed lines) against a benchmark database (DATABASE_URL, default h_chaos_bench) and a
private redis-server on a free loopback port (never the shared one; killed by pid at the end):

  predict p50/p99 with 0, 1 and 1,000 collectors   scripts/bench_capture.py (REST, in process)
  the same with asynchronous capture commits        scripts/bench_capture.py --async-commit
  the same during a broker outage                   scripts/bench_capture.py, broker port closed
  pipeline throughput, 1 and 2 worker processes     scripts/bench_pipeline.py
  capture-to-ingest p50/p99 on an idle system       scripts/bench_pipeline.py
  Show All page with 1,000 collectors               this script (--show-all, in process)
  gRPC vs REST predict throughput                   scripts/bench_grpc_vs_rest.py

Prints one table (figure, value, target, met) and writes it to reports/bench-<date>.md (plus
the raw figures in reports/bench-<date>.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from chaoslib.procs import Procs, RedisServer, free_port  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/h_chaos_bench"


def run(cmd: list[str], env: dict, timeout: float, log: Path) -> str:
    started = time.monotonic()
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    print(f"  ({time.monotonic() - started:.0f} s, exit {proc.returncode}, log {log})", flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[1]} failed ({proc.returncode}); see {log}")
    return proc.stdout


def ensure_database(env: dict) -> None:
    name = env["DATABASE_URL"].rsplit("/", 1)[1]
    subprocess.run(
        ["createdb", "-h", "127.0.0.1", "-U", "postgres", name], capture_output=True, check=False
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )


def capture_rows(path: Path) -> dict:
    """REST-level rows by scenario, plus the service-level ones (model + hooks) under "service"."""
    rows = json.loads(path.read_text())["rows"]
    out = {r["scenario"]: r for r in rows if r["level"] == "rest"}
    out["service"] = {r["scenario"]: r for r in rows if r["level"] == "service"}
    return out


def grpc_vs_rest(out: str) -> dict:
    figures = {}
    for label, key in (("REST", "rest"), ("gRPC", "grpc")):
        m = re.search(
            rf"{label} \(.*?\)\s+n=\s*(\d+) err=\s*(\d+) rps=\s*([\d.]+) p50=\s*([\d.]+)ms "
            rf"p95=\s*([\d.]+)ms p99=\s*([\d.]+)ms",
            out,
        )
        if m:
            n, err, rps, p50, _p95, p99 = m.groups()
            figures[key] = {"n": int(n), "errors": int(err), "rps": float(rps),
                            "p50_ms": float(p50), "p99_ms": float(p99)}  # fmt: skip
    return figures


# -- Show All with 1,000 collectors (runs in its own process: --show-all) ------------------------


def show_all(n_collectors: int, requests: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collectors_module.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.test import Client
    from django.urls import reverse

    from collectors_module.accounts.models import User
    from collectors_module.accounts.services import key_create
    from collectors_module.applications.models import App
    from collectors_module.collectors.models import COLLECTOR_ACTIVE, Collector
    from collectors_module.inference.models import ModelVersion
    from collectors_module.modules.models import Module
    from collectors_module.modules.services import installation_authorize, installation_create

    tag = uuid.uuid4().hex[:8]
    user = User.objects.create(username=f"bench-showall-{tag}", password="!", plan="professional")
    try:
        app = App.objects.create(owner=user, public_id="showall")
        key = key_create(owner=user, scopes=["All"]).key
        inst = installation_create(
            module=Module.objects.get(slug="collector"), app=app, user=user, slug="collectors",
            visibility=10,
        )  # fmt: skip
        installation_authorize(installation=inst, user=user)
        mv = ModelVersion.objects.get(public_id="b13a9cff8522d90a1d8d6902fce2dc9a")
        Collector.objects.bulk_create(
            Collector(
                app=app,
                public_id=f"c-{i:04d}",
                pre_queue_random_sample=1.0,
                status=COLLECTOR_ACTIVE,
                source_model_version=mv,
                model_user_id="builtin",
                model_app_id="main",
                model_id="color-recognition",
                model_version_id=mv.public_id,
                post_inputs_key=key,
                caller=user,
            )
            for i in range(n_collectors)
        )
        client = Client()
        client.force_login(user)
        url = reverse("collectors:list", args=[app.public_id, inst.slug])
        times = []
        size = 0
        for i in range(requests + 2):
            t = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - t) * 1000
            assert response.status_code == 200, response.status_code
            size = len(response.content)
            if i >= 2:  # two warm-up requests
                times.append(elapsed)
        times.sort()
        return {
            "collectors": n_collectors,
            "requests": requests,
            "p50_ms": round(statistics.median(times), 1),
            "max_ms": round(times[-1], 1),
            "bytes": size,
        }
    finally:
        Collector.objects.filter(app__owner=user).delete()
        user.delete()


# -- the table -----------------------------------------------------------------------------------


def table(fig: dict) -> list[str]:
    rows: list[tuple[str, str, str, str]] = []

    def add(name, value, target="", met=None):
        rows.append((name, value, target, "" if met is None else ("yes" if met else "**no**")))

    cap = fig.get("capture")
    if cap:
        off, on, many = cap["off"], cap["on"], cap["1000"]
        add("predict p50 / p99, 0 collectors (ms)", f"{off['p50_ms']:.2f} / {off['p99_ms']:.2f}")
        r50, d99 = on["p50_ms"] / off["p50_ms"], on["p99_ms"] - off["p99_ms"]
        add("predict p50 / p99, 1 collector (ms)", f"{on['p50_ms']:.2f} / {on['p99_ms']:.2f}")
        add("  ratio p50 / delta p99, 1 collector", f"{r50:.3f} / {d99:+.2f} ms",
            "<= 1.05 / <= +2 ms", r50 <= 1.05 and d99 <= 2.0)  # fmt: skip
        svc = cap.get("service") or {}
        if svc:
            add("  capture hook cost alone (predict service, 1 collector): p50 / p99 delta",
                f"{svc['on']['p50_ms'] - svc['off']['p50_ms']:+.3f} / "
                f"{svc['on']['p99_ms'] - svc['off']['p99_ms']:+.2f} ms")  # fmt: skip
        r50m, r99m = many["p50_ms"] / off["p50_ms"], many["p99_ms"] / off["p99_ms"]
        add("predict p50 / p99, 1,000 non-matching (ms)",
            f"{many['p50_ms']:.2f} / {many['p99_ms']:.2f}")  # fmt: skip
        add("  ratio p50 / p99, 1,000 non-matching", f"{r50m:.3f} / {r99m:.3f}", "<= 1.02",
            r50m <= 1.02)  # fmt: skip
    asy = fig.get("capture_async_commit")
    if asy:
        r50, d99 = (
            asy["on"]["p50_ms"] / asy["off"]["p50_ms"],
            asy["on"]["p99_ms"] - asy["off"]["p99_ms"],
        )
        add("  same with COLLECTORS_CAPTURE_ASYNC_COMMIT=1: ratio p50 / delta p99",
            f"{r50:.3f} / {d99:+.2f} ms", "<= 1.05 / <= +2 ms", r50 <= 1.05 and d99 <= 2.0)  # fmt: skip
    out = fig.get("capture_broker_down")
    if out:
        off, on = out["off"], out["on"]
        r50, r99 = on["p50_ms"] / off["p50_ms"], on["p99_ms"] / off["p99_ms"]
        add("predict p50 / p99, 1 collector, broker down (ms)",
            f"{on['p50_ms']:.2f} / {on['p99_ms']:.2f}")  # fmt: skip
        add("  ratio to 0 collectors p50 / p99, broker down", f"{r50:.3f} / {r99:.3f}", "<= 1.05",
            r50 <= 1.05)  # fmt: skip
        if cap:
            up = cap["on"]
            add("  ratio to 1 collector with the broker up, p50 / p99",
                f"{on['p50_ms'] / up['p50_ms']:.3f} / {on['p99_ms'] / up['p99_ms']:.3f}", "<= 1.05",
                on["p50_ms"] / up["p50_ms"] <= 1.05)  # fmt: skip
    pipe = fig.get("pipeline")
    if pipe:
        for t in pipe.get("throughput", []):
            w = t["worker_processes"]
            cps = t.get("captures_per_second") or 0
            add(f"pipeline throughput, {w} worker process{'es' if w > 1 else ''} (captures/s)",
                f"{cps:.0f}", ">= 1,000" if w == 2 else "", (cps >= 1000) if w == 2 else None)  # fmt: skip
        idle = pipe.get("idle_latency")
        if idle:
            add("capture-to-ingest p50 / p99, idle (ms)",
                f"{idle['capture_to_ingest_p50_ms']} / {idle['capture_to_ingest_p99_ms']}",
                "p50 <= 50", idle["capture_to_ingest_p50_ms"] <= 50)  # fmt: skip
    sa = fig.get("show_all")
    if sa:
        add(f"Show All page, {sa['collectors']:,} collectors (ms, p50 / max)",
            f"{sa['p50_ms']} / {sa['max_ms']}")  # fmt: skip
    gr = fig.get("grpc_vs_rest")
    if gr and "rest" in gr and "grpc" in gr:
        add("predict throughput REST / gRPC (req/s)",
            f"{gr['rest']['rps']:.0f} / {gr['grpc']['rps']:.0f} "
            f"(gRPC/REST {gr['grpc']['rps'] / gr['rest']['rps']:.2f})")  # fmt: skip
    for name, err in fig.get("errors", {}).items():
        add(f"{name}: not measured", err[:80])
    lines = ["| figure | value | target | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller samples (a smoke run)")
    parser.add_argument("--captures", type=int, default=5000, help="pipeline backlog size")
    parser.add_argument("--reports", default=str(ROOT / "reports"))
    parser.add_argument(
        "--only", default="", help="comma list: capture,async,outage,pipeline,showall,grpc"
    )
    parser.add_argument("--show-all", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.show_all:
        print(json.dumps(show_all(1000, 2 if args.quick else 5)))
        return 0

    only = set(filter(None, args.only.split(",")))
    want = lambda k: not only or k in only  # noqa: E731
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    logdir = ROOT / "var" / f"bench-report-{uuid.uuid4().hex[:6]}"
    procs = Procs(logdir)
    redis_srv = RedisServer(procs)
    figures: dict = {"date": stamp, "cpus": os.cpu_count(), "errors": {}}
    try:
        redis_srv.start()
        env = {
            **os.environ,
            "COLLECTORS_DEV": "1",
            "DJANGO_SETTINGS_MODULE": "collectors_module.settings",
            "PYTHONUNBUFFERED": "1",
            "CELERY_BROKER_URL": redis_srv.url(1),
            "REDIS_URL": redis_srv.url(1),
        }
        env.setdefault("DATABASE_URL", DEFAULT_DB)
        env.pop("COLLECTORS_FAULTS", None)
        ensure_database(env)
        figures["database"] = env["DATABASE_URL"].rsplit("/", 1)[1]
        figures["load_average_at_start"] = os.getloadavg()
        py = sys.executable
        rounds = ["--rounds", "2", "--per-round", "60"] if args.quick else ["--rounds", "4"]
        steps = []
        if want("capture"):
            steps.append(("capture", lambda: capture_rows(_capture(py, env, rounds, logdir, ""))))
        if want("async"):
            steps.append(("capture_async_commit", lambda: capture_rows(
                _capture(py, env, [*rounds, "--async-commit"], logdir, "-async"))))  # fmt: skip
        if want("outage"):
            dead = {**env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/1",
                    "REDIS_URL": f"redis://127.0.0.1:{free_port()}/1"}  # fmt: skip
            steps.append(("capture_broker_down",
                          lambda: capture_rows(_capture(py, dead, rounds, logdir, "-outage"))))  # fmt: skip
        if want("pipeline"):
            n = 1000 if args.quick else args.captures
            samples = 20 if args.quick else 100

            def pipeline():
                out = logdir / "pipeline.json"
                run([py, "scripts/bench_pipeline.py", "-n", str(n), "--latency-samples",
                     str(samples), "--json", str(out)], env, 900, logdir / "pipeline.out")  # fmt: skip
                return json.loads(out.read_text())

            steps.append(("pipeline", pipeline))
        if want("showall"):
            steps.append(("show_all", lambda: json.loads(run(
                [py, "scripts/bench_report.py", "--show-all", *(["--quick"] if args.quick else [])],
                env, 300, logdir / "showall.out").strip().splitlines()[-1])))  # fmt: skip
        if want("grpc"):
            grpc_n = "100" if args.quick else "400"
            steps.append(("grpc_vs_rest", lambda: grpc_vs_rest(run(
                [py, "scripts/bench_grpc_vs_rest.py", "-n", grpc_n, "-c", "4"], env, 600,
                logdir / "grpc.out"))))  # fmt: skip
        for name, step in steps:
            try:
                figures[name] = step()
            except Exception as exc:  # one failing figure does not hide the others
                figures["errors"][name] = f"{type(exc).__name__}: {exc}"
                print(f"  {name} failed: {exc}", flush=True)
    finally:
        procs.stop_all()
    lines = table(figures)
    header = [
        f"# Benchmark report {stamp}",
        "",
        f"One machine, {os.cpu_count()} cores, load average at start "
        f"{figures.get('load_average_at_start', (0,))[0]:.2f}; database "
        f"{figures.get('database', '?')}. Command: `.venv/bin/python scripts/bench_report.py"
        f"{' --quick' if args.quick else ''}`. Predict figures: REST PostModelOutputs in process "
        "(builtin sentiment, 1 text input); throughput: a committed backlog published to real "
        "Celery workers (prefork); gRPC vs REST: color-recognition over gunicorn 2x4 and the "
        "TLS gRPC server, concurrency 4.",
        "",
    ]
    reports = Path(args.reports)
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"bench-{stamp}.md").write_text("\n".join(header + lines) + "\n")
    (reports / f"bench-{stamp}.json").write_text(json.dumps(figures, indent=2, default=str))
    print("\n".join(lines))
    print(f"\nwritten: {reports / f'bench-{stamp}.md'}")
    return 0 if not figures["errors"] else 1


def _capture(py: str, env: dict, rounds: list[str], logdir: Path, suffix: str) -> Path:
    out = logdir / f"capture{suffix}.json"
    run([py, "scripts/bench_capture.py", *rounds, "--json", str(out)], env, 900,
        logdir / f"capture{suffix}.out")  # fmt: skip
    return out


if __name__ == "__main__":
    sys.exit(main())
