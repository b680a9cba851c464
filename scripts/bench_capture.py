#!/usr/bin/env python
"""Predict latency with 0 vs 1 matching active collector, and with 1,000 non-matching collectors.

In-process: PostModelOutputs (REST JSON, builtin `sentiment` text model) through Django's test
client, so the figures are the server's own cost (routing, auth, model, capture hook, response)
without network or WSGI server noise. The three scenarios are measured in the same run,
interleaved round by round so drift hits them equally:

  off    one collector on the model, inactive          (0 matching)
  on     the same collector active, random sample 1.0  (1 matching: one capture row per call)
  1000   it inactive again, 1,000 active collectors on another model version (0 matching)

Every capture is published after commit through the relay, as in production; point
CELERY_BROKER_URL at a spare Redis db. Bench data (users `bench-*`) is deleted at the end.

  COLLECTORS_DEV=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/h_collectors \\
  CELERY_BROKER_URL=redis://127.0.0.1:6379/6 REDIS_URL=redis://127.0.0.1:6379/6 \\
  .venv/bin/python scripts/bench_capture.py [--rounds 6] [--per-round 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collectors_module.settings")
os.environ.setdefault("COLLECTORS_DEV", "1")

SENTIMENT = ("sentiment", "996e3c70d6372b1e7e3c10875ebd2b8b")
COLOR = ("color-recognition", "b13a9cff8522d90a1d8d6902fce2dc9a")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="COLLECTORS_CAPTURE_ASYNC_COMMIT=1: capture commits do not wait for the WAL flush",
    )
    args = parser.parse_args()
    if args.async_commit:
        os.environ["COLLECTORS_CAPTURE_ASYNC_COMMIT"] = "1"

    import django

    django.setup()
    from clarifai_grpc.grpc.api import resources_pb2
    from django.core.management import call_command
    from django.db.models import F
    from django.test import Client

    from collectors_module.accounts.models import User
    from collectors_module.accounts.services import key_create
    from collectors_module.applications.models import App
    from collectors_module.collectors import conf, counters, matching, relay, services, writer
    from collectors_module.collectors.models import (
        COLLECTOR_ACTIVE,
        COLLECTOR_INACTIVE,
        Capture,
        Collector,
    )
    from collectors_module.core.protojson import from_dict
    from collectors_module.inference.models import ModelVersion

    call_command("migrate", verbosity=0)
    tag = uuid.uuid4().hex[:8]
    user = User.objects.create(username=f"bench-{tag}", password="!", plan="professional")
    app = App.objects.create(owner=user, public_id="bench")
    other_app = App.objects.create(owner=user, public_id="bench-many")
    created = key_create(owner=user, scopes=["All"])
    secret, key = created.secret, created.key
    color_version = ModelVersion.objects.get(public_id=COLOR[1])

    def body(collector_id: str, model) -> resources_pb2.Collector:
        src = {
            "model_user_id": "builtin",
            "model_app_id": "main",
            "model_id": model[0],
            "model_version_id": model[1],
            "post_inputs_key_id": key.public_id,
            "caller_user_id": user.username,
        }
        return from_dict(
            {"id": collector_id, "pre_queue_random_sample": 1.0,
             "collector_source": {"api_post_model_outputs_collector_source": src}},
            resources_pb2.Collector,
        )  # fmt: skip

    target = services.collector_create(app=app, actor=user, collector_pb=body("target", SENTIMENT))
    services.collector_set_status(app=app, collector_id="target", active=False)
    template = services.collector_create(
        app=other_app, actor=user, collector_pb=body("many-0", COLOR)
    )
    many = [
        Collector(
            app=other_app,
            public_id=f"many-{i}",
            pre_queue_random_sample=1.0,
            status=COLLECTOR_INACTIVE,
            source_model_version=color_version,
            model_user_id="builtin",
            model_app_id="main",
            model_id=COLOR[0],
            model_version_id=COLOR[1],
            post_inputs_key=key,
            caller=user,
        )
        for i in range(1, 1000)
    ]
    Collector.objects.bulk_create(many)
    many_pks = [
        template.pk,
        *Collector.objects.filter(app=other_app)
        .exclude(pk=template.pk)
        .values_list("pk", flat=True),
    ]
    Collector.objects.filter(pk__in=many_pks).update(
        status=COLLECTOR_INACTIVE, revision=F("revision") + 1
    )

    client = Client()
    path = f"/v2/users/builtin/apps/main/models/{SENTIMENT[0]}/versions/{SENTIMENT[1]}/outputs"
    payload = json.dumps({"inputs": [{"data": {"text": {"raw": "what a lovely, sunny day"}}}]})
    headers = {"HTTP_AUTHORIZATION": f"Key {secret}"}

    def call() -> float:
        started = time.perf_counter()
        response = client.post(path, data=payload, content_type="application/json", **headers)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"predict failed: {response.status_code} {response.content[:300]!r}")
        return elapsed

    from collectors_module.inference.services import predict

    mv = ModelVersion.objects.select_related("model__app__owner").get(public_id=SENTIMENT[1])
    inputs = [
        resources_pb2.Input(
            data=resources_pb2.Data(text=resources_pb2.Text(raw="what a lovely, sunny day"))
        )
    ]

    def call_service() -> float:
        """The predict service alone (model + after-predict hooks), no HTTP, auth or lookups."""
        started = time.perf_counter()
        predict(caller=user, model_version=mv, inputs=inputs, request_id=uuid.uuid4().hex)
        return (time.perf_counter() - started) * 1000

    def scenario(name: str) -> None:
        # Captures still queued for the writer thread belong to the previous scenario.
        writer.flush(10.0)
        Collector.objects.filter(pk=target.pk).update(
            status=COLLECTOR_ACTIVE if name == "on" else COLLECTOR_INACTIVE,
            revision=F("revision") + 1,
        )
        Collector.objects.filter(pk__in=many_pks).update(
            status=COLLECTOR_ACTIVE if name == "1000" else COLLECTOR_INACTIVE,
            revision=F("revision") + 1,
        )
        matching.invalidate()

    samples: dict[str, list[float]] = {"off": [], "on": [], "1000": []}
    service: dict[str, list[float]] = {"off": [], "on": [], "1000": []}
    captures_before = Capture.objects.filter(collector=target).count()
    try:
        for r in range(args.rounds):
            order = ["off", "on", "1000"] if r % 2 == 0 else ["1000", "on", "off"]
            for name in order:
                scenario(name)
                for _ in range(args.warmup):
                    call()
                samples[name].extend(call() for _ in range(args.per_round))
                service[name].extend(call_service() for _ in range(args.per_round))
        writer.flush(10.0)
        relay.flush(5.0)
        counters.flush()
        captured = Capture.objects.filter(collector=target).count() - captures_before
        from django.db.models import Sum

        from collectors_module.collectors.models import CollectorCounter

        drops = dict(
            CollectorCounter.objects.filter(collector=target, metric__startswith="dropped:")
            .values_list("metric")
            .annotate(n=Sum("count"))
        )
    finally:
        Collector.objects.filter(app__owner=user).delete()
        user.delete()
        matching.invalidate()

    print(f"\nbuiltin sentiment, 1 text input, in process; {args.rounds} rounds x {args.per_round} calls per "
          f"scenario and level, interleaved; capture commit {'async' if args.async_commit else 'synchronous'}, "
          f"written {'by the writer thread' if conf.capture_writer_thread() else 'inline'}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    rows = []
    labels = {
        "off": "0 matching (1 inactive)",
        "on": "1 matching active",
        "1000": "1,000 non-matching active",
    }
    for title, table in (
        (
            "PostModelOutputs over REST (Django test client: routing, key auth, lookups, model, hooks)",
            samples,
        ),
        ("inference.services.predict alone (model + after-predict hooks)", service),
    ):
        b50, b99 = percentile(table["off"], 0.5), percentile(table["off"], 0.99)
        print(f"\n{title}")
        print(
            f"{'scenario':<28}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'p50 ratio':>11}{'p99 delta':>11}"
        )
        for name in ("off", "on", "1000"):
            v = table[name]
            p50, p99 = percentile(v, 0.5), percentile(v, 0.99)
            rows.append({"level": "rest" if table is samples else "service", "scenario": name, "p50_ms": p50,
                         "p99_ms": p99, "mean_ms": statistics.fmean(v), "p50_ratio": p50 / b50,
                         "p99_delta_ms": p99 - b99, "n": len(v)})  # fmt: skip
            print(f"{labels[name]:<28}{p50:>9.3f}{p99:>9.3f}{statistics.fmean(v):>9.3f}"
                  f"{p50 / b50:>11.3f}{p99 - b99:>+11.3f}")  # fmt: skip
    expected = args.rounds * (2 * args.per_round + args.warmup)
    print(
        f"\ncaptures written in the 'on' scenario: {captured} (expected {expected}); drops: {drops or 'none'}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": rows, "captured": captured, "drops": drops}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
