#!/usr/bin/env python
"""Benchmark PostModelOutputs (and PostWorkflowResults) through the REST endpoint.

Without --url it creates/migrates a benchmark database (DATABASE_URL, default collectors_bench),
a user with an app and a key, starts gunicorn on a free port, and measures against it. With
--url and --key it measures a server that is already running (the key's user needs an app for
the workflow part; give it with --user/--app).

    .venv/bin/python scripts/bench_predict.py -n 300 -c 4 --model color-recognition
    .venv/bin/python scripts/bench_predict.py -n 300 -c 4 --model general-image-recognition \
        --image collectors_module/accounts/demo/coffee.jpg
    .venv/bin/python scripts/bench_predict.py --url http://127.0.0.1:8000 --key KEY -n 200

Prints p50/p95/p99 latency and requests per second for each measured call.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import sys
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

MODELS_PATH = "/v2/users/builtin/apps/main/models"


def sample_inputs(model: str, batch: int, image: Path | None = None) -> list[dict]:
    """Inputs the model takes: the --image file, else a 256x256 JPEG with shapes and text, or a
    sentence for the text model."""
    if image is not None:
        b64 = base64.b64encode(image.read_bytes()).decode()
        return [{"data": {"image": {"base64": b64}}} for _ in range(batch)]
    if model == "sentiment":
        return [
            {"data": {"text": {"raw": f"I really love this product, number {i}!"}}}
            for i in range(batch)
        ]
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (256, 256), (240, 240, 235))
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 20, 120, 120), fill=(200, 30, 30))
    draw.ellipse((130, 40, 240, 150), fill=(30, 60, 200))
    draw.text((20, 180), "BENCH 42", fill="black", font=ImageFont.load_default(size=32))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    b64 = base64.b64encode(buf.getvalue()).decode()
    return [{"data": {"image": {"base64": b64}}} for _ in range(batch)]


def make_tenant() -> tuple[str, str, str]:
    """A bench user, app and All-scoped PAT in the benchmark database (Django already set up)."""
    from collectors_module.accounts.models import User
    from collectors_module.accounts.services import key_create, user_create
    from collectors_module.applications.services import app_create

    user = User.objects.filter(username="bench").first()
    if user is None:
        user, _ = user_create(user_id="bench", plan="professional")
    app_id = "bench-" + uuid.uuid4().hex[:8]
    app_create(owner=user, app_id=app_id)
    return user.username, app_id, key_create(owner=user, scopes=["All"], description="bench").secret


def checked(session: requests.Session, url: str, body: dict) -> dict:
    r = session.post(url, json=body, timeout=60)
    payload = r.json()
    code = payload.get("status", {}).get("code")
    if code != 10000:
        raise RuntimeError(f"{url}: {code} {payload.get('status', {}).get('details', '')}")
    return payload


def session_factory(key: str):
    import threading

    local = threading.local()

    def get() -> requests.Session:
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
            s.headers["Authorization"] = f"Key {key}"
        return s

    return get


def create_workflow(base: str, key: str, user: str, app: str, model: str) -> str | None:
    wf_id = "bench-wf-" + uuid.uuid4().hex[:6]
    body = {
        "workflows": [
            {
                "id": wf_id,
                "nodes": [
                    {
                        "id": "model",
                        "model": {"id": model, "user_id": "builtin", "app_id": "main"},
                    },
                ],
            }
        ]
    }
    r = requests.post(
        f"{base}/v2/users/{user}/apps/{app}/workflows",
        json=body,
        headers={"Authorization": f"Key {key}"},
        timeout=30,
    )
    status = r.json().get("status", {})
    if status.get("code") != 10000:
        print(
            f"  PostWorkflowResults skipped: could not create a workflow ({status.get('code')} "
            f"{status.get('details') or status.get('description')})"
        )
        return None
    return wf_id


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=300, help="requests per measurement")
    parser.add_argument("-c", type=int, default=4, help="concurrent clients")
    parser.add_argument("--batch", type=int, default=1, help="inputs per request")
    parser.add_argument(
        "--model", default="color-recognition", help="built-in model id in builtin/main"
    )
    parser.add_argument("--image", type=Path, help="image file to send (default: a synthetic JPEG)")
    parser.add_argument("--url", help="base URL of a running server (else one is started)")
    parser.add_argument("--key", help="API key (PAT) for --url")
    parser.add_argument("--user", default="", help="user id of --key (for the workflow part)")
    parser.add_argument("--app", default="", help="an app of that user (for the workflow part)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers when starting one")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    args = parser.parse_args()

    server = None
    if args.url:
        if not args.key:
            parser.error("--url needs --key")
        base, key, user, app = args.url.rstrip("/"), args.key, args.user, args.app
    else:
        env = benchlib.bench_env()
        env.setdefault(
            "CELERY_BROKER_URL", os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
        )
        benchlib.ensure_database(env)
        benchlib.setup_django(env)
        user, app, key = make_tenant()
        port = benchlib.free_port()
        server = benchlib.start_rest(env, port, workers=args.workers, threads=args.threads)
        base = f"http://127.0.0.1:{port}"
        print(
            f"server: gunicorn {args.workers} workers x {args.threads} threads on {base} "
            f"(db {env['DATABASE_URL'].rsplit('/', 1)[1]})"
        )
    try:
        session = session_factory(key)
        inputs = sample_inputs(args.model, args.batch, args.image)
        predict_url = f"{base}{MODELS_PATH}/{args.model}/outputs"
        body = {"inputs": inputs}
        checked(session(), predict_url, body)  # loads the model in at least one worker
        benchlib.run_load(
            lambda i: checked(session(), predict_url, body), max(20, args.c * 5), args.c
        )
        print(f"PostModelOutputs  model={args.model} batch={args.batch} concurrency={args.c}")
        print(
            f"  {benchlib.fmt(benchlib.run_load(lambda i: checked(session(), predict_url, body), args.n, args.c))}"
        )
        print("  sequential (c=1)")
        print(
            f"  {benchlib.fmt(benchlib.run_load(lambda i: checked(session(), predict_url, body), max(50, args.n // 3), 1))}"
        )

        if not (user and app):
            print("PostWorkflowResults skipped: give --user and --app with --url")
            return
        wf_id = create_workflow(base, key, user, app, args.model)
        if wf_id is None:
            return
        wf_url = f"{base}/v2/users/{user}/apps/{app}/workflows/{wf_id}/results"
        wf_inputs = sample_inputs(args.model, min(args.batch, 32), args.image)
        wf_body = {"inputs": wf_inputs}
        checked(session(), wf_url, wf_body)
        benchlib.run_load(
            lambda i: checked(session(), wf_url, wf_body), max(20, args.c * 5), args.c
        )
        print(
            f"PostWorkflowResults  one node ({args.model}) batch={len(wf_inputs)} concurrency={args.c}"
        )
        print(
            f"  {benchlib.fmt(benchlib.run_load(lambda i: checked(session(), wf_url, wf_body), args.n, args.c))}"
        )
    finally:
        if server is not None:
            benchlib.stop(server)


if __name__ == "__main__":
    main()
