#!/usr/bin/env python
"""Inline admission cost: microseconds per `executor.evaluate_inline` of a pre-queue workflow.

    .venv/bin/python scripts/bench_admission.py [-n 20000]

Migrates DATABASE_URL (default: the `collectors_bench` PostgreSQL database), then inside one
transaction that is rolled back at the end creates a user, an app, operator models and three
pre-queue workflows, and times `evaluate_inline` on a colour model's output (the decision a
collector makes on the predict path for every matched prediction). Prints mean, p50 and p99 per
call, and the database queries made by the timed calls (0 expected: the plan is cached).

The workflows include the uncertainty operators (least-confidence, margin-below, entropy-above)
and a class-quota node, evaluated with the admission's Redis quota gate (one Lua call to REDIS_URL
per evaluation, the cost a class-balanced collector adds). Calls are timed in chunks, the
workflows interleaved in a random order per round; "random-sample only (A/A)" is the same
workflow as "random-sample only", an A/A control for the noise between rows.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import benchlib

ROUNDS = 20


class _Rollback(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="evaluations per workflow")
    args = parser.parse_args()
    env = benchlib.bench_env()
    benchlib.ensure_database(env)
    benchlib.setup_django(env)

    import redis
    from clarifai_grpc.grpc.api import resources_pb2
    from django.conf import settings
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from collectors_module.accounts.services import user_create
    from collectors_module.applications.services import app_create
    from collectors_module.capture import quotas
    from collectors_module.core.protojson import from_dict
    from collectors_module.inference.runners.builtin import BY_NAME
    from collectors_module.inference.services import model_create
    from collectors_module.workflows import executor, selectors, services

    color = BY_NAME["color-recognition"]

    def operator(app, model_id, type_id, params, concepts=()):
        pb = resources_pb2.Model(id=model_id, model_type_id=type_id)
        pb.output_info.params.update(params)
        for c in concepts:
            pb.output_info.data.concepts.add(id=c[0], value=c[1])
        model_create(app=app, model_pb=pb)

    def workflow(app, workflow_id, nodes):
        services.workflow_create(
            app=app,
            workflow_pb=from_dict({"id": workflow_id, "nodes": nodes}, resources_pb2.Workflow),
        )
        return selectors.workflow_for_app(app, workflow_id)

    def n(node_id, model_id, inputs=(), builtin=False):
        node = {"id": node_id, "model": {"id": model_id}}
        if builtin:
            node["model"].update(
                user_id="builtin", app_id="main", model_version={"id": color.version_id}
            )
        if inputs:
            node["node_inputs"] = [{"node_id": i} for i in inputs]
        return node

    output = resources_pb2.Data(
        concepts=[
            resources_pb2.Concept(id=c, name=c, value=v)
            for c, v in (
                ("red", 0.62),
                ("white", 0.2),
                ("black", 0.1),
                ("gray", 0.05),
                ("blue", 0.03),
            )
        ]
    )
    input_data = resources_pb2.Data()
    input_data.metadata.update({"camera": {"site": "north"}, "lang": "en"})

    try:
        with transaction.atomic():
            user, _ = user_create(
                user_id="bench-admission", password="bench-pw-123456", plan="enterprise"
            )
            app = app_create(owner=user, app_id="bench")
            operator(app, "sample", "random-sample", {"keep_fraction": 0.5})
            operator(
                app,
                "red",
                "concept-thresholder",
                {"concept_threshold_type": "GREATER_THAN", "filter_other_concepts": True},
                [("red", 0.5)],
            )
            operator(
                app,
                "north",
                "metadata-filter",
                {"conditions": [{"key": "camera.site", "value": "north"}]},
            )
            operator(app, "uncertain", "max-probability-below", {"threshold": 0.9})
            operator(app, "lc", "least-confidence", {"threshold": 0.3})
            operator(app, "margin", "margin-below", {"threshold": 0.5})
            operator(app, "entropy", "entropy-above", {"threshold": 0.3})
            operator(app, "quota", "class-quota", {"max_per_window": 1_000_000})
            flows = {
                "random-sample only": workflow(app, "w1", [n("s", "sample")]),
                "source -> thresholder -> random-sample": workflow(
                    app,
                    "w2",
                    [
                        n("src", "color-recognition", builtin=True),
                        n("t", "red", ["src"]),
                        n("s", "sample", ["t"]),
                    ],
                ),
                "metadata -> uncertain -> random-sample": workflow(
                    app,
                    "w3",
                    [n("m", "north"), n("u", "uncertain", ["m"]), n("s", "sample", ["u"])],
                ),
                "source -> least-confidence": workflow(
                    app, "w4", [n("src", "color-recognition", builtin=True), n("o", "lc", ["src"])]
                ),
                "source -> margin-below": workflow(
                    app,
                    "w5",
                    [n("src", "color-recognition", builtin=True), n("o", "margin", ["src"])],
                ),
                "source -> entropy-above": workflow(
                    app,
                    "w6",
                    [n("src", "color-recognition", builtin=True), n("o", "entropy", ["src"])],
                ),
                "source -> class-quota (Redis gate)": workflow(
                    app,
                    "w7",
                    [n("src", "color-recognition", builtin=True), n("o", "quota", ["src"])],
                ),
            }
            flows["random-sample only (A/A)"] = flows["random-sample only"]
            source_mv = flows["source -> thresholder -> random-sample"].nodes.all()[0].model_version
            print(
                f"evaluate_inline, {args.n} calls per workflow (one warm-up call builds the plan), "
                f"in {ROUNDS} rounds with the workflows interleaved in random order"
            )
            gated = {"source -> class-quota (Redis gate)"}

            def call(label, wf, key):
                gate = quotas.Gate(app.pk, key) if label in gated else None
                return executor.evaluate_inline(
                    wf,
                    output,
                    source_model_version=source_mv,
                    seed_key=key,
                    input_data=input_data,
                    quota=gate,
                )

            for label, wf in flows.items():
                assert executor.is_inline(wf, source_mv)
                call(label, wf, "warm")
            timings: dict[str, list[int]] = {label: [] for label in flows}
            kept = dict.fromkeys(flows, 0)
            per_round = max(1, args.n // ROUNDS)
            rng = random.Random(7)
            with CaptureQueriesContext(connection) as queries:
                for r in range(ROUNDS):
                    order = list(flows)
                    rng.shuffle(order)
                    for label in order:
                        wf = flows[label]
                        for i in range(per_round):
                            key = f"capture-{r}-{i}"
                            t0 = time.perf_counter_ns()
                            keep, _ = call(label, wf, key)
                            timings[label].append(time.perf_counter_ns() - t0)
                            kept[label] += keep
            for label in flows:
                us = sorted(t / 1000 for t in timings[label])
                print(
                    f"  {label:42s} mean {statistics.fmean(us):6.1f} us  p50 {us[len(us) // 2]:6.1f} us  "
                    f"p99 {us[int(len(us) * 0.99)]:6.1f} us  max {us[-1]:7.1f} us  kept {kept[label] / len(us):.2f}"
                )
            print(f"  database queries during the timed calls: {len(queries)}")
            client = redis.Redis.from_url(settings.COLLECTORS_LIMITER_REDIS_URL)
            for k in client.scan_iter(f"collectors:cq:{app.pk}:*"):
                client.delete(k)
            raise _Rollback
    except _Rollback:
        pass


if __name__ == "__main__":
    main()
