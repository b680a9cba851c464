#!/usr/bin/env python
"""Capture on the quick start's own servers: SQLite, the folder broker, `runserver`, the capture
agent and a solo worker, as `scripts/quickstart.sh` runs them (in a temporary folder).

    COLLECTORS_DEV=1 .venv/bin/python scripts/bench_quickstart.py [--rounds 4] [--per-block 200]

Sequential predictions on the demo collector's source model (general-image-recognition, the path
`seed_demo` prints) with the demo collector off and on, in blocks whose
order is shuffled per round (seeded), with an off/off A/A control; each block after the worker
has ingested everything captured so far. Then the time from a prediction to its input in the
demo app's gallery (the collector's ingested count), idle, one at a time.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, free_port, pct, ratio_table, spool_backlog, wait_port


def png(color=(200, 20, 20)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def call(method: str, url: str, key: str, body=None) -> dict:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Key {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-block", type=int, default=200)
    parser.add_argument("--gallery-samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10_000)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-quickstart-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_"))}
    env.update(
        COLLECTORS_DEV="1",
        DJANGO_SETTINGS_MODULE="collectors_module.settings",
        DATABASE_URL=f"sqlite:///{work / 'qs.sqlite3'}",
        CELERY_BROKER_URL="filesystem://",
        COLLECTORS_VAR_DIR=str(work / "var"),
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    env.pop("COLLECTORS_FAULTS", None)

    def manage(*a: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *a], cwd=ROOT, env=env, check=True, capture_output=True,
            text=True,
        ).stdout  # fmt: skip

    manage("migrate", "--no-input", "-v", "0")
    seed = manage("seed_demo")
    key = next(
        line.split(":", 1)[1].strip() for line in seed.splitlines() if line.startswith("key:")
    )
    procs = []
    for name, cmd in (
        ("web", [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]),
        # At the quick start's lower priorities (scripts/quickstart.sh: the agent niced, the worker
        # in the idle scheduling class).
        ("agent", ["nice", "-n", "10", sys.executable, "manage.py", "captureagent"]),
        ("worker", ["chrt", "--idle", "0", sys.executable, "-m", "celery", "-A", "collectors_module", "worker", "-B",
                    "--pool", "solo", "--loglevel", "WARNING", "-s",
                    str(work / "celerybeat-schedule")]),
    ):  # fmt: skip
        with open(work / f"{name}.log", "wb") as log:
            procs.append(
                subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
    base = f"http://127.0.0.1:{port}"
    # The model the demo collector watches, on the path seed_demo prints.
    predict_path = next(
        line.split(":", 1)[1].strip() for line in seed.splitlines() if line.startswith("predict:")
    )
    predict_url = f"{base}{predict_path}"
    collector_url = f"{base}/v2/users/demo/apps/demo-app/collectors"
    stats_url = f"{base}/api/v2/users/demo/apps/demo-app/collectors/demo-collector/stats"
    image = png()
    samples: dict[str, list[float]] = {"off-a": [], "off-b": [], "on": []}
    per_round: dict[str, list[float]] = {k: [] for k in samples}
    gallery_ms: list[float] = []
    try:
        wait_port(port, 60)

        def predict() -> float:
            t = time.perf_counter()
            r = call("POST", predict_url, key, {"inputs": [{"data": {"image": {"base64": image}}}]})
            if r["status"]["code"] != 10000:
                raise SystemExit(f"predict failed: {r['status']}")
            return (time.perf_counter() - t) * 1000

        def set_active(active: bool) -> None:
            got = call("GET", f"{collector_url}/demo-collector", key)["collector"]
            got["status"] = {"code": 52001 if active else 52002}
            r = call("PATCH", collector_url, key, {"action": "overwrite", "collectors": [got]})
            if r["status"]["code"] != 10000:
                raise SystemExit(f"patch failed: {r['status']}")
            time.sleep(1.0)  # the servers' capture index follows within a second

        def ingested() -> int:
            stats = call("GET", stats_url, key)["stats"]
            return int(stats["ingested"]) + int(stats["filtered"]) + int(stats["failed"])

        def drain() -> None:
            deadline = time.monotonic() + 120
            while spool_backlog(work / "var" / "spool") and time.monotonic() < deadline:
                time.sleep(0.1)
            last, still = -1, 0
            while time.monotonic() < deadline and still < 3:  # ingestion settled
                n = ingested()
                still = still + 1 if n == last else 0
                last = n
                time.sleep(0.3)

        for _ in range(50):
            predict()
        for r in range(args.rounds):
            order = list(samples)
            rng.shuffle(order)
            print(f"round {r + 1}/{args.rounds}: {' '.join(order)}", flush=True)
            for name in order:
                set_active(name == "on")
                drain()
                for _ in range(20):
                    predict()
                got = [predict() for _ in range(args.per_block)]
                samples[name].extend(got)
                per_round[name].append(pct(got, 50))
        set_active(True)
        drain()
        for _ in range(args.gallery_samples):
            before = ingested()
            t = time.perf_counter()
            predict()
            while ingested() <= before:
                if time.perf_counter() - t > 30:
                    stats = call("GET", stats_url, key).get("stats")
                    tails = "".join(
                        f"\n--- {n}.log\n" + (work / f"{n}.log").read_text(errors="replace")[-3000:]
                        for n in ("agent", "worker")
                    )
                    raise SystemExit(
                        f"a capture did not reach the gallery within 30 s; stats {stats}{tails}"
                    )
                time.sleep(0.01)
            gallery_ms.append((time.perf_counter() - t) * 1000)
            time.sleep(0.2)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        logs = {
            n: (work / f"{n}.log").read_text(errors="replace") for n in ("web", "agent", "worker")
        }
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nquick start servers (runserver, SQLite, folder broker, capture agent, solo worker), "
        f"{predict_path.split('/models/')[1].split('/')[0]}, 8x8 PNG; {args.rounds} rounds x {args.per_block} sequential predictions, "
        f"random order (seed {args.seed}); {os.cpu_count()} cores"
    )
    ratio_table(samples, per_round, base="off-a", control="off-b")
    print(
        f"\nprediction to input in the gallery (the collector's stats polled every 10 ms), idle: p50 "
        f"{pct(gallery_ms, 50):.0f} ms, p99 {pct(gallery_ms, 99):.0f} ms, max {max(gallery_ms):.0f} ms"
    )
    locked = sum(text.count("database is locked") for text in logs.values())
    print(f"'database is locked' in the logs: {locked}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
