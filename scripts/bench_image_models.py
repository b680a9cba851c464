#!/usr/bin/env python
"""Milliseconds per image of each built-in image model, in this process (no server, no database).

    .venv/bin/python scripts/bench_image_models.py                 # the demo photo, 100 runs each
    .venv/bin/python scripts/bench_image_models.py --image photo.jpg -n 200
    .venv/bin/python scripts/bench_image_models.py --cold          # also time the graph build

Each model is loaded once (not timed, except with --cold), warmed up, then called `-n` times with
one input per call, as PostModelOutputs calls it after the input was validated: decoding,
preprocessing and inference are included. Prints p50 / p99 / mean per model. With --cold it first
builds the general models' ONNX graph from the packaged weights into a temporary cache folder and
times that and the session start, then times a start from the (now valid) cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

DEMO_PHOTO = benchlib.ROOT / "collectors_module" / "accounts" / "demo" / "coffee.jpg"
MODELS = (
    "color-recognition",
    "ocr",
    "qr-code",
    "general-image-recognition",
    "general-image-embedding",
    "general-english-image-caption",
)


def cold_start() -> None:
    from collectors_module.inference.runners.builtin import imagenet

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        weights = imagenet.read_state_dict(imagenet.weights_path())
        t1 = time.perf_counter()
        imagenet.load_model_bytes(Path(tmp))  # builds and caches (weights read again inside)
        t2 = time.perf_counter()
        imagenet.ImageNetModel(Path(tmp))  # from the cache: read, checksum, session start
        t3 = time.perf_counter()
    print(
        f"general models, first use: read weights {1000 * (t1 - t0):.0f} ms, "
        f"read + build + cache the graph {1000 * (t2 - t1):.0f} ms, "
        f"later starts (cache read, SHA-256, session) {1000 * (t3 - t2):.0f} ms "
        f"({len(weights)} tensors)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", type=Path, default=DEMO_PHOTO, help="image file to predict on")
    parser.add_argument("-n", type=int, default=100, help="timed calls per model")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--cold", action="store_true", help="also time the graph build")
    args = parser.parse_args()

    benchlib.setup_django(benchlib.bench_env())
    from clarifai_grpc.grpc.api import resources_pb2
    from django.conf import settings

    from collectors_module.core.images import validate_image
    from collectors_module.inference.runners.registry import get_runner

    raw = args.image.read_bytes()
    info = validate_image(raw)
    print(
        f"image: {args.image.name} {info.width}x{info.height} {info.format}, {len(raw)} bytes; "
        f"IMAGE_MODEL_THREADS={settings.IMAGE_MODEL_THREADS}, {os.cpu_count()} cores"
    )
    if args.cold:
        cold_start()
    data = resources_pb2.Data(image=resources_pb2.Image(base64=raw))
    for name in args.models:
        runner = get_runner(f"builtin:{name}")
        for _ in range(5):
            runner.predict([data], {})
        times = []
        for _ in range(args.n):
            t0 = time.perf_counter()
            [result] = runner.predict([data], {})
            times.append((time.perf_counter() - t0) * 1000)
        if not isinstance(result, resources_pb2.Data):
            raise SystemExit(f"{name} failed: {result}")
        seen = (
            result.text.raw[:40]
            or (result.concepts[0].name if result.concepts else "")
            or (f"{len(result.embeddings[0].vector)} values" if result.embeddings else "")
        )
        print(
            f"  {name:32s} p50={benchlib.pct(times, 50):7.1f} ms  p99={benchlib.pct(times, 99):7.1f} ms"
            f"  mean={statistics.fmean(times):7.1f} ms  n={args.n}  -> {seen!r}"
        )


if __name__ == "__main__":
    main()
