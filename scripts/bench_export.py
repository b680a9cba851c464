#!/usr/bin/env python
"""Dataset version export: peak RSS of the export task's process and inputs per second.

    .venv/bin/python scripts/bench_export.py [-n 20000] [--small 2000] [--formats ...]

Migrates DATABASE_URL (default: the `collectors_bench` PostgreSQL database) and, once per
database, stores N image inputs (distinct small PNGs in blob storage under a private MEDIA_ROOT,
each with a collected detector output holding one region) through the inputs service the capture
worker uses, puts them in a dataset and freezes a version of all of them (and one of the first
`--small`). Then, in random order, each scenario starts a FRESH Celery worker process (solo pool:
the task runs in the worker's main process), asks for one export through the service the API
calls, waits for DATASET_VERSION_EXPORT_SUCCESS, and reads the worker's peak resident set
(VmHWM in /proc) before stopping it:

  control       the worker with nothing exported (its baseline RSS after start-up)
  <fmt> small   the small version in that format
  <fmt> full    the N-input version in that format

Bounded memory shows as `full` staying near `small` (and both near the control) while N grows
tenfold. inputs/s is N over the wall time from the request to the success (pick-up included).
Needs the broker of CELERY_BROKER_URL (Redis) and nothing else running on it.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import benchlib

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("CLARIFAI_DATA_PROTOBUF", "CLARIFAI_DATA_JSON", "COCO")


def png(i: int) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (64, 48), ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256))
    for k in range(24):  # the index as pixels: every image is distinct (no blob dedup)
        img.putpixel((k, 0), (255, 255, 255) if (i >> k) & 1 else (0, 0, 0))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def populate(n: int, small: int):
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.accounts.models import User
    from collectors_module.accounts.services import user_create
    from collectors_module.applications.models import App
    from collectors_module.applications.services import app_create
    from collectors_module.datasets import services
    from collectors_module.datasets.models import Dataset, DatasetVersion
    from collectors_module.inputs.models import Input
    from collectors_module.inputs.services import NewInput, inputs_create_bulk

    user = User.objects.filter(username="bench-export").first()
    if user is None:
        user, _ = user_create(user_id="bench-export", password="bench-pass-123", plan="enterprise")
    app = App.objects.filter(owner=user, public_id="exports").first() or app_create(
        owner=user, app_id="exports"
    )
    have = Input.objects.filter(app=app).count()
    t0 = time.perf_counter()
    for start in range(have, n, 500):
        items = []
        for i in range(start, min(n, start + 500)):
            region = {
                "region_info": {
                    "bounding_box": {
                        "top_row": 0.1,
                        "left_col": 0.2,
                        "bottom_row": 0.6,
                        "right_col": 0.7,
                    }
                },
                "data": {"concepts": [{"id": "thing", "name": "thing", "value": 0.9}]},
            }
            items.append(
                NewInput(
                    input_pb=resources_pb2.Input(id=f"in-{i:06d}"),
                    image_bytes=png(i),
                    annotations=[
                        {"model_id": "det", "model_version_id": "v", "data": {"regions": [region]}}
                    ],
                )
            )
        results = inputs_create_bulk(app=app, items=items)
        bad = [r for r in results if not hasattr(r, "pk")]
        if bad:
            raise SystemExit(f"could not store inputs: {bad[0]}")
    if have < n:
        print(f"stored {n - have} inputs in {time.perf_counter() - t0:.1f}s", flush=True)
    dataset = Dataset.objects.filter(app=app, public_id="all").first()
    if dataset is None:
        (dataset,) = services.datasets_create(
            app=app, dataset_pbs=[resources_pb2.Dataset(id="all")]
        )
    services.dataset_inputs_add_matching(app=app, dataset=dataset)
    versions = {}
    for name, size in (("full", n), ("small", small)):
        vid = f"{name}-{size}"
        version = DatasetVersion.objects.filter(dataset=dataset, public_id=vid).first()
        if version is None or version.status_code != 64015:
            if version is not None:
                services.versions_delete(app=app, dataset=dataset, version_ids=[vid])
            if name == "small":
                # A dataset of the first `small` inputs, versioned the same way.
                sub = Dataset.objects.filter(app=app, public_id=f"first-{small}").first()
                if sub is None:
                    (sub,) = services.datasets_create(
                        app=app, dataset_pbs=[resources_pb2.Dataset(id=f"first-{small}")]
                    )
                    services.dataset_inputs_add_rows(
                        dataset=sub,
                        input_pks=list(
                            Input.objects.filter(app=app)
                            .order_by("pk")
                            .values_list("pk", flat=True)[:small]
                        ),
                    )
                target = sub
            else:
                target = dataset
            version = DatasetVersion.objects.filter(dataset=target, public_id=vid).first()
            if version is None:
                version = services.version_create(app=app, dataset=target, version_id=vid)
            t0 = time.perf_counter()
            outcome = services.version_build(version.pk)
            print(f"built version {vid} ({outcome}) in {time.perf_counter() - t0:.1f}s", flush=True)
            version.refresh_from_db()
        versions[name] = version
    return versions


def start_worker(logdir: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({"DB_APPLICATION_NAME": "collectors-worker", "PYTHONUNBUFFERED": "1"})
    env.pop("COLLECTORS_FAULTS", None)
    piddir = logdir / f"pids-{uuid.uuid4().hex[:6]}"
    piddir.mkdir(parents=True)
    env["COLLECTORS_WORKER_PIDFILE_DIR"] = str(piddir)
    log = open(logdir / f"worker-{piddir.name}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "collectors_module", "worker", "--pool", "solo",
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--hostname", f"bench{uuid.uuid4().hex[:6]}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (piddir / f"main-{proc.pid}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start; see {logdir}")
        time.sleep(0.05)
    return proc


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run(scenario: str, versions, logdir: Path) -> dict:
    from collectors_module.datasets import services
    from collectors_module.datasets.models import DatasetVersionExport

    proc = start_worker(logdir)
    try:
        if scenario == "control":
            time.sleep(2.0)
            return {"rss": peak_rss_mb(proc.pid), "n": 0, "secs": 0.0}
        fmt, size = scenario.rsplit(" ", 1)
        version = versions[size]
        DatasetVersionExport.objects.filter(version=version, format=fmt).delete()
        t0 = time.perf_counter()
        (row,) = services.exports_request(version=version, formats=[fmt])
        while True:
            row.refresh_from_db()
            if row.status_code == 64200:
                break
            if row.status_code == 64202:
                raise SystemExit(f"{scenario} failed: {row.status_details}")
            if proc.poll() is not None:
                raise SystemExit(f"worker exited during {scenario}; see {logdir}")
            time.sleep(0.05)
        secs = time.perf_counter() - t0
        return {
            "rss": peak_rss_mb(proc.pid),
            "n": version.inputs_count,
            "secs": secs,
            "size": row.size,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="inputs in the full version")
    parser.add_argument("--small", type=int, default=2000, help="inputs in the small version")
    parser.add_argument("--formats", nargs="*", default=list(FORMATS))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    media = Path(tempfile.gettempdir()) / "collectors-bench-export-media"
    media.mkdir(exist_ok=True)
    env = benchlib.bench_env(MEDIA_ROOT=str(media))
    benchlib.ensure_database(env)
    benchlib.setup_django(env)
    versions = populate(args.n, args.small)
    logdir = Path(tempfile.mkdtemp(prefix="bench-export-"))
    scenarios = ["control", "control"] + [
        f"{fmt} {size}" for fmt in args.formats for size in ("small", "full")
    ]
    rng = random.Random(args.seed)
    rng.shuffle(scenarios)
    print(f"cpus: {os.cpu_count()}  load: {os.getloadavg()[0]:.2f}  order: {scenarios}", flush=True)
    rows = {}
    for scenario in scenarios:
        result = run(scenario, versions, logdir)
        key = scenario if scenario not in rows else scenario + " (again)"
        rows[key] = result
        rate = f"{result['n'] / result['secs']:8.0f}" if result["n"] else "       -"
        size = f"{result.get('size', 0) / 2**20:8.1f}" if result["n"] else "       -"
        print(
            f"{key:36s} inputs {result['n']:6d}  peak RSS {result['rss']:7.1f} MB  "
            f"inputs/s {rate}  archive MB {size}",
            flush=True,
        )
    shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    main()
