#!/usr/bin/env python
"""Capture overhead while retention purges old rows, with its A/A control.

This process is the serving process (as in bench_capture.py: PostModelOutputs over REST through
Django's test client, builtin sentiment, background threads on, captures through the spool to a
real capture agent process). First it writes `--rows` finished captures 60 days old (and a tenth
as many old per-minute counters) for another collector of the same database, with one
INSERT ... SELECT generate_series. Then, round after round in a random order (seeded), each
scenario preceded by a drain (spool committed, counters flushed) and a warm-up:

  off         no collector capturing, no purge
  on-a, on-b  one collector capturing every prediction, no purge (A/A: on-b / on-a)
  off-purge   no collector capturing, retention purging in another process
  on-purge    capturing, retention purging

The purge runs `capture.retention.purge()` (its batches of RETENTION_BATCH_SIZE, short
transactions, pauses) in a separate process, as beat would, only during the purge scenarios.
It prints the p50/p99 per scenario, the capture overhead ratio (on/off) without and with the
purge, the purge's own rate and how many of the old rows it deleted while predictions ran.

  COLLECTORS_DEV=1 .venv/bin/python scripts/bench_retention.py --rows 1000000 [--rounds 6]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_capture import AgentProc
from benchlib import ROOT, bench_env, ensure_database, pct, ratio_table, setup_django, spool_backlog

SENTIMENT = ("sentiment", "996e3c70d6372b1e7e3c10875ebd2b8b")
SCENARIOS = ["off", "on-a", "on-b", "off-purge", "on-purge"]

PURGER = """
import json, os, sys, time
import django
django.setup()
from collectors_module.capture import retention
flag, out = sys.argv[1], sys.argv[2]
total, busy = 0, 0.0
while os.path.exists(flag):
    if os.path.exists(flag + ".run"):
        t0 = time.monotonic()
        got = retention.purge(capture_days=30, counter_days=30, max_seconds=0.5)
        busy += time.monotonic() - t0
        total += got["captures"] + got["counters"]
        with open(out, "w") as fh:
            json.dump({"deleted": total, "busy_s": busy}, fh)
        if not got["captures"] and not got["counters"]:
            time.sleep(0.05)
    else:
        time.sleep(0.01)
"""


def generate(collector_id: int, rows: int) -> float:
    """Write `rows` finished captures (and rows // 10 counters) 60 days old; returns seconds."""
    from django.db import connection, transaction

    started = time.monotonic()
    step = 200_000
    for first in range(0, rows, step):
        n = min(step, rows - first)
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                """
                INSERT INTO collectors_capture (id, collector_id, state, reason, status_code,
                    attempts, next_attempt_at, created_at, updated_at, finished_at, request_id,
                    input_index, input_data, outputs, destination_input_id, filtered_by,
                    pre_queue_pending)
                SELECT gen_random_uuid(), %s, 'ingested', '', 0, 1,
                    now() - interval '60 days', now() - interval '60 days',
                    now() - interval '60 days', now() - interval '60 days',
                    'old-' || g, 0, '{}', '[]', '', '', false
                FROM generate_series(%s, %s) AS g
                """,
                [collector_id, first, first + n - 1],
            )
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO collectors_collectorcounter (collector_id, metric, bucket, count)
            SELECT %s, 'matched', date_trunc('minute', now()) - interval '60 days'
                   - g * interval '1 minute', 1
            FROM generate_series(1, %s) AS g
            """,
            [collector_id, max(1, rows // 10)],
        )
    with connection.cursor() as cur:
        cur.execute("ANALYZE collectors_capture")
        cur.execute("ANALYZE collectors_collectorcounter")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="old capture rows to purge")
    parser.add_argument("--batch", type=int, default=0, help="RETENTION_BATCH_SIZE of the purge")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=400, help="calls per scenario a round")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10_000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    work = Path(tempfile.mkdtemp(prefix="bench-retention-"))
    spool_dir = work / "spool"
    env = bench_env(COLLECTORS_SPOOL_DIR=str(spool_dir), COLLECTORS_CAPTURE_HANDOFF="spool")
    ensure_database(env)
    setup_django(env)

    from clarifai_grpc.grpc.api import resources_pb2
    from django.db.models import Count
    from django.test import Client
    from django.utils import timezone

    from collectors_module.accounts.services import key_create, user_create, user_set_plan
    from collectors_module.applications.services import app_create
    from collectors_module.capture import counters, matching, spool
    from collectors_module.capture.models import Capture, CollectorCounter
    from collectors_module.collectors.models import COLLECTOR_ACTIVE, COLLECTOR_INACTIVE, Collector
    from collectors_module.collectors.services import collector_create
    from collectors_module.core import generations
    from collectors_module.core.protojson import from_dict

    tag = uuid.uuid4().hex[:8]
    user, _ = user_create(user_id=f"bench-ret-{tag}")
    user = user_set_plan(user=user, plan="professional")
    app = app_create(owner=user, app_id="bench")
    created = key_create(owner=user, scopes=["All"], description="bench")
    secret, key = created.secret, created.key

    def make(cid: str):
        pb = from_dict(
            {"id": cid, "pre_queue_random_sample": 1.0, "status": {"code": COLLECTOR_INACTIVE},
             "collector_source": {"api_post_model_outputs_collector_source": {
                 "model_user_id": "builtin", "model_app_id": "main", "model_id": SENTIMENT[0],
                 "model_version_id": SENTIMENT[1], "post_inputs_key_id": key.public_id,
                 "caller_user_id": user.username}}},
            resources_pb2.Collector,
        )  # fmt: skip
        return collector_create(app=app, actor=user, collector_pb=pb)

    target = make("target")
    history = make("history")  # holds the old rows (inactive: it never matches)
    print(f"writing {args.rows:,} old captures ...", flush=True)
    gen_s = generate(history.pk, args.rows)
    old_rows = Capture.objects.filter(collector=history).count()
    print(f"wrote {old_rows:,} captures in {gen_s:.1f} s", flush=True)

    agent = AgentProc(env, spool_dir, work)
    flag = work / "purge"
    flag.write_text("")
    purge_out = work / "purged.json"
    purger = subprocess.Popen(
        [sys.executable, "-c", PURGER, str(flag), str(purge_out)],
        cwd=ROOT,
        env=dict(env, **({"RETENTION_BATCH_SIZE": str(args.batch)} if args.batch else {})),
        stdout=open(work / "purger.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    client = Client()
    path = f"/v2/users/builtin/apps/main/models/{SENTIMENT[0]}/versions/{SENTIMENT[1]}/outputs"
    payload = json.dumps({"inputs": [{"data": {"text": {"raw": "what a lovely, sunny day"}}}]})
    headers = {"HTTP_AUTHORIZATION": f"Key {secret}"}

    def call() -> float:
        started = time.perf_counter()
        r = client.post(path, data=payload, content_type="application/json", **headers)
        elapsed = (time.perf_counter() - started) * 1000
        if r.status_code != 200:
            raise SystemExit(f"predict failed: {r.status_code} {r.content[:300]!r}")
        return elapsed

    def set_capturing(on: bool) -> None:
        Collector.objects.filter(pk=target.pk).update(
            status=COLLECTOR_ACTIVE if on else COLLECTOR_INACTIVE,
            deactivated_at=None if on else timezone.now(),
        )
        generations.changed(Collector._meta.db_table)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if len(matching.candidates(target.source_model_version_id)) == (1 if on else 0):
                break
            time.sleep(0.01)

    def drain() -> None:
        deadline = time.monotonic() + 60
        while spool_backlog(spool_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        counters.flush()
        time.sleep(0.2)

    def deleted() -> dict:
        try:
            return json.loads(purge_out.read_text())
        except (OSError, ValueError):
            return {"deleted": 0, "busy_s": 0.0}

    samples: dict[str, list[float]] = {s: [] for s in SCENARIOS}
    per_round: dict[str, list[float]] = {s: [] for s in SCENARIOS}
    during: list[tuple[int, float]] = []  # rows deleted and seconds, per purge window
    run_flag = Path(str(flag) + ".run")
    agent.use("up")
    try:
        for _ in range(args.warmup * 4):
            call()
        for r in range(args.rounds):
            order = list(SCENARIOS)
            rng.shuffle(order)
            print(f"round {r + 1}/{args.rounds}: {' '.join(order)}", flush=True)
            for name in order:
                set_capturing(name.startswith("on"))
                drain()
                for _ in range(args.warmup):
                    call()
                purging = name.endswith("purge")
                if purging:
                    before, t0 = deleted()["deleted"], time.monotonic()
                    run_flag.write_text("")
                    time.sleep(0.3)  # the purger is into its batches
                got = [call() for _ in range(args.per_round)]
                if purging:
                    run_flag.unlink()
                    time.sleep(0.6)  # its current run ends (max 0.5 s)
                    during.append((deleted()["deleted"] - before, time.monotonic() - t0))
                samples[name].extend(got)
                per_round[name].append(pct(got, 50))
        set_capturing(False)
        drain()
        remaining = Capture.objects.filter(collector=history).count()
        captured = Capture.objects.filter(collector=target).count()
        states = dict(
            Capture.objects.filter(collector=target).values_list("state").annotate(n=Count("pk"))
        )
        old_counters = CollectorCounter.objects.filter(collector=history).count()
    finally:
        with contextlib.suppress(OSError):
            flag.unlink()
        with contextlib.suppress(subprocess.TimeoutExpired):
            purger.wait(10)
        if purger.poll() is None:
            purger.kill()
        agent.stop()
        spool.close_writer()
        Collector.objects.filter(app__owner=user).delete()
        with contextlib.suppress(Exception):
            user.delete()
        shutil.rmtree(work, ignore_errors=True)

    rows_during = sum(n for n, _ in during)
    secs_during = sum(s for _, s in during)
    print(
        f"\nPostModelOutputs over REST in process, builtin sentiment, 1 text input; {args.rounds}"
        f" rounds x {args.per_round} calls per scenario, random order per round (seed "
        f"{args.seed}); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    rows = ratio_table(samples, per_round, base="on-a", control="on-b")
    off, on = pct(samples["off"], 50), pct(samples["on-a"] + samples["on-b"], 50)
    off_p, on_p = pct(samples["off-purge"], 50), pct(samples["on-purge"], 50)
    aa = pct(samples["on-b"], 50) / pct(samples["on-a"], 50)
    print(
        f"\ncapture overhead (p50 capturing / p50 not capturing): without purge {on / off:.3f}, "
        f"with purge {on_p / off_p:.3f}; A/A control on-b/on-a {aa:.3f}"
    )
    print(f"purge effect on a capturing prediction (on-purge / on): {on_p / on:.3f}")
    print(
        f"old rows: {old_rows:,} written in {gen_s:.0f} s; deleted while predictions ran: "
        f"{rows_during:,} in {secs_during:.1f} s ({rows_during / max(secs_during, 1e-9):,.0f} "
        f"rows/s incl. counters); left: {remaining:,} captures, {old_counters:,} counters"
    )
    print(f"captures of the capturing collector: {captured} {states}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"rows": rows, "overhead_no_purge": on / off, "overhead_purge": on_p / off_p,
                 "aa": aa, "old_rows": old_rows, "deleted_during": rows_during,
                 "seconds_during": secs_during, "remaining": remaining, "seed": args.seed},
                indent=2,
            )
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
