#!/usr/bin/env python
"""Predict latency in process with and without capture, with its noise floor.

PostModelOutputs (REST JSON, builtin `sentiment`, one text input) through Django's test client in
this process, which acts as the serving process: background threads on, captures handed over to
a spool that a real capture agent process commits (`manage.py captureagent`), no Celery worker.
Scenarios, measured round after round in a random order per round (seeded), each preceded by a
drain (the agent has committed everything spooled so far, counters flushed) and a warm-up:

  off-a, off-b  the collector on the model inactive (A/A: off-b / off-a is the noise floor)
  on            one active collector capturing every prediction (sample 1.0), through the spool
  inline        the same, the request thread inserting the row itself (the design alternative)
  1000          1,000 active collectors on another model version, none matching
  broker-down   capturing, the agent's broker unreachable
  agent-down    capturing, no agent running (frames wait in the spool)
  db-down       capturing, the agent's database unreachable

It also times the sentiment model alone (the runner's predict) to give the predict overhead.

  COLLECTORS_DEV=1 .venv/bin/python scripts/bench_capture.py [--rounds 8] [--per-round 300]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (
    ROOT,
    bench_env,
    ensure_database,
    free_port,
    pct,
    ratio_table,
    setup_django,
    spool_backlog,
)

SENTIMENT = ("sentiment", "996e3c70d6372b1e7e3c10875ebd2b8b")
COLOR = ("color-recognition", "b13a9cff8522d90a1d8d6902fce2dc9a")
SCENARIOS = ["off-a", "off-b", "on", "inline", "1000", "broker-down", "agent-down", "db-down"]


class AgentProc:
    """The capture agent subprocess, restarted when a scenario needs another environment."""

    def __init__(self, env: dict, spool: Path, logdir: Path):
        self.base_env, self.spool, self.logdir = env, spool, logdir
        self.proc: subprocess.Popen | None = None
        self.mode = ""

    def use(self, mode: str) -> None:
        if mode == self.mode and (mode == "none" or (self.proc and self.proc.poll() is None)):
            return
        self.stop()
        self.mode = mode
        if mode == "none":
            return
        env = dict(self.base_env, COLLECTORS_SPOOL_DIR=str(self.spool))
        if mode == "broker-down":
            env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{free_port()}/0"
        if mode == "db-down":
            env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{free_port()}/nothing"
        with open(self.logdir / f"agent-{mode}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "captureagent"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10_000)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--profile", type=int, default=0, help="profile N predictions (no collector) and stop"
    )
    parser.add_argument(
        "--profile-scenario", default="off-a", help="the scenario --profile runs (e.g. on, 1000)"
    )
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    rng = random.Random(args.seed)

    work = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    spool_dir = work / "spool"
    env = bench_env(COLLECTORS_SPOOL_DIR=str(spool_dir), COLLECTORS_CAPTURE_HANDOFF="spool")
    ensure_database(env)
    setup_django(env)

    from clarifai_grpc.grpc.api import resources_pb2
    from django.conf import settings
    from django.core.signals import setting_changed
    from django.test import Client
    from django.utils import timezone

    from collectors_module.accounts.models import User
    from collectors_module.accounts.services import key_create, user_create, user_set_plan
    from collectors_module.applications.services import app_create
    from collectors_module.capture import counters, matching, spool
    from collectors_module.capture.models import Capture
    from collectors_module.collectors.models import COLLECTOR_ACTIVE, COLLECTOR_INACTIVE, Collector
    from collectors_module.collectors.services import collector_create
    from collectors_module.core import generations
    from collectors_module.core.protojson import from_dict
    from collectors_module.inference.hooks import PredictionEvent, run_after_predict
    from collectors_module.inference.models import ModelVersion
    from collectors_module.inference.services import run_model_version

    # A run that was killed leaves its collectors behind, active on the same model versions:
    # they would capture too and keep the index from matching what a scenario expects.
    stale = User.objects.filter(username__startswith="bench-")
    Collector.objects.filter(app__owner__in=stale).delete()
    stale.delete()
    tag = uuid.uuid4().hex[:8]
    user, _ = user_create(user_id=f"bench-{tag}")
    user = user_set_plan(user=user, plan="professional")
    app = app_create(owner=user, app_id="bench")
    other = app_create(owner=user, app_id="bench-many")
    created = key_create(owner=user, scopes=["All"], description="bench")
    secret, key = created.secret, created.key

    def source(model) -> dict:
        return {
            "model_user_id": "builtin",
            "model_app_id": "main",
            "model_id": model[0],
            "model_version_id": model[1],
            "post_inputs_key_id": key.public_id,
            "caller_user_id": user.username,
        }

    def make(app_, cid: str, model):
        pb = from_dict(
            {"id": cid, "pre_queue_random_sample": 1.0, "status": {"code": COLLECTOR_INACTIVE},
             "collector_source": {"api_post_model_outputs_collector_source": source(model)}},
            resources_pb2.Collector,
        )  # fmt: skip
        return collector_create(app=app_, actor=user, collector_pb=pb)

    target = make(app, "target", SENTIMENT)
    template = make(other, "many-0", COLOR)
    Collector.objects.bulk_create(
        [
            Collector(
                app=other, public_id=f"many-{i}", pre_queue_random_sample=1.0,
                status=COLLECTOR_INACTIVE, source_model_version=template.source_model_version,
                model_user_id="builtin", model_app_id="main", model_id=COLOR[0],
                model_version_id=COLOR[1], post_inputs_key=key, caller=user,
            )
            for i in range(1, 1000)
        ]
    )  # fmt: skip
    many = Collector.objects.filter(app=other)

    agent = AgentProc(env, spool_dir, work)
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

    mv = ModelVersion.objects.select_related("model__app__owner").get(public_id=SENTIMENT[1])
    data = resources_pb2.Data(text=resources_pb2.Text(raw="what a lovely, sunny day"))

    def model_alone() -> float:
        started = time.perf_counter()
        run_model_version(mv, [data])
        return (time.perf_counter() - started) * 1000

    source_output = resources_pb2.Output(data=run_model_version(mv, [data])[0])
    source_output.status.code = 10000

    def hook_alone() -> float:
        """The after-predict hooks on their own (admission and hand-off when capturing)."""
        event = PredictionEvent(
            model_version=mv, caller=user, request_id=uuid.uuid4().hex,
            inputs=[resources_pb2.Input(data=data)], outputs=[source_output],
        )  # fmt: skip
        started = time.perf_counter()
        run_after_predict(event)
        return (time.perf_counter() - started) * 1e6

    def set_states(target_on: bool, many_on: bool) -> None:
        now = timezone.now()  # deactivating keeps what was captured before (as the service does)
        Collector.objects.filter(pk=target.pk).update(
            status=COLLECTOR_ACTIVE if target_on else COLLECTOR_INACTIVE,
            deactivated_at=None if target_on else now,
        )
        many.update(
            status=COLLECTOR_ACTIVE if many_on else COLLECTOR_INACTIVE,
            deactivated_at=None if many_on else now,
        )
        generations.changed(Collector._meta.db_table)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the background thread rebuilt the index
            indexed = {e.pk for e in matching.candidates(target.source_model_version_id)}
            if (target.pk in indexed) == target_on and (
                not many_on or matching.candidates(template.source_model_version_id)
            ):
                break
            time.sleep(0.01)

    def drain() -> None:
        """Background work of the previous scenario ends before the next one starts."""
        if agent.mode not in ("none", "db-down"):
            deadline = time.monotonic() + 60
            while spool_backlog(spool_dir) and time.monotonic() < deadline:
                time.sleep(0.05)
        counters.flush()
        time.sleep(0.2)

    def prepare(name: str) -> None:
        value = "inline" if name == "inline" else "spool"
        if value != settings.COLLECTORS_CAPTURE_HANDOFF:
            settings.COLLECTORS_CAPTURE_HANDOFF = value
            setting_changed.send(
                sender=None, setting="COLLECTORS_CAPTURE_HANDOFF", value=value, enter=True
            )
        mode = {"broker-down": "broker-down", "agent-down": "none", "db-down": "db-down"}
        agent.use(mode.get(name, "up"))
        set_states(name in ("on", "inline", "broker-down", "agent-down", "db-down"), name == "1000")

    samples: dict[str, list[float]] = {s: [] for s in scenarios}
    per_round: dict[str, list[float]] = {s: [] for s in scenarios}
    model_ms: list[float] = []
    before = Capture.objects.filter(collector=target).count()
    try:
        for _ in range(args.warmup * 4):
            call()
        if args.profile:  # where a prediction's time goes
            prepare(args.profile_scenario)
            drain()
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.profile):
                call()
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(30)
            stats.sort_stats("cumulative").print_stats("collectors_module", 40)
            stats.print_callees("on_prediction|hand_off|admit|append")
            return 0
        for r in range(args.rounds):
            order = list(scenarios)
            rng.shuffle(order)
            print(f"round {r + 1}/{args.rounds}: {' '.join(order)}", flush=True)
            for name in order:
                prepare(name)
                if agent.mode == "up":
                    drain()
                else:
                    counters.flush()
                    time.sleep(0.2)
                for _ in range(args.warmup):
                    call()
                got = [call() for _ in range(args.per_round)]
                samples[name].extend(got)
                per_round[name].append(pct(got, 50))
            model_ms.extend(model_alone() for _ in range(args.per_round))
            agent.use("up")
            drain()
        hook_us: dict[str, list[float]] = {}
        hook_n = max(1, args.per_round * args.rounds // 4)
        for name in ("off-a", "on"):
            prepare(name)
            drain()
            hook_us[name] = [hook_alone() for _ in range(hook_n)]
        agent.use("up")
        drain()
        captured = Capture.objects.filter(collector=target).count() - before
        from django.db.models import Sum

        from collectors_module.capture.models import CollectorCounter

        counted = dict(
            CollectorCounter.objects.filter(collector=target)
            .values_list("metric")
            .annotate(n=Sum("count"))
        )
    finally:
        agent.stop()
        spool.close_writer()
        Collector.objects.filter(app__owner=user).delete()
        with contextlib.suppress(Exception):
            user.delete()
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nPostModelOutputs over REST in process (Django test client: routing, key auth, lookups,"
        f" model, capture hook), builtin sentiment, 1 text input; {args.rounds} rounds x "
        f"{args.per_round} calls per scenario, random order per round (seed {args.seed}); load "
        f"average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    rows = ratio_table(samples, per_round, base="off-a", control="off-b")
    capturing = [
        s for s in ("on", "inline", "broker-down", "agent-down", "db-down") if s in samples
    ]
    expected = args.rounds * (args.per_round + args.warmup) * len(capturing) + hook_n
    model_p50 = pct(model_ms, 50)
    off_p50 = pct(samples.get("off-a", []), 50)
    print(
        f"\nmodel alone (sentiment runner) p50 {model_p50:.3f} ms -> predict overhead "
        f"(off-a p50 minus model) {off_p50 - model_p50:.3f} ms"
    )
    print(
        f"the after-predict hooks alone ({hook_n} calls each): p50 {pct(hook_us['off-a'], 50):.1f} us"
        f" with no collector matching, {pct(hook_us['on'], 50):.1f} us capturing (p99 "
        f"{pct(hook_us['on'], 99):.1f} us)"
    )
    print(f"captures committed by the agent or inline: {captured} (expected {expected})")
    print(f"counters of the capturing collector: {counted}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"rows": rows, "captured": captured, "expected": expected,
                 "model_p50_ms": model_p50, "overhead_ms": off_p50 - model_p50,
                 "seed": args.seed},
                indent=2,
            )
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
