"""PostModelOutputs over gRPC (TLS) and over REST on the same database and machine.

    .venv/bin/python scripts/bench_grpc_vs_rest.py [-n 400] [-c 8] [--model color-recognition]

Starts gunicorn (REST) and `manage.py grpcserver` (TLS) against DATABASE_URL (default: a
`collectors_bench` PostgreSQL database it creates), predicts with a built-in model of builtin/main
on a small generated image, and prints requests/s and p50/p95/p99 for both and their ratio.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import tempfile
import urllib.request
from pathlib import Path

import benchlib


def tiny_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=400)
    parser.add_argument("-c", type=int, default=8)
    parser.add_argument("--model", default="color-recognition")
    args = parser.parse_args()

    env = benchlib.bench_env()
    benchlib.ensure_database(env)
    benchlib.setup_django(env)
    from collectors_module.accounts.models import User
    from collectors_module.accounts.services import key_create, user_create

    user = User.objects.filter(username="bench").first() or user_create(user_id="bench")[0]
    secret = key_create(owner=user, scopes=["All"], description="bench").secret

    image = tiny_png()
    rest_port, grpc_port = benchlib.free_port(), benchlib.free_port()
    rest = benchlib.start_rest(env, rest_port)
    certs = Path(tempfile.mkdtemp(prefix="bench-certs-"))
    grpc_proc = benchlib.start_grpc(env, grpc_port, certs)
    try:
        body = json.dumps(
            {"inputs": [{"data": {"image": {"base64": base64.b64encode(image).decode()}}}]}
        ).encode()
        url = f"http://127.0.0.1:{rest_port}/v2/users/builtin/apps/main/models/{args.model}/outputs"

        def rest_call(i: int) -> None:
            req = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={"Authorization": f"Key {secret}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=30) as resp:
                payload = json.loads(resp.read())
            if payload["status"]["code"] != 10000:
                raise RuntimeError(payload["status"])

        from clarifai_grpc.channel.clarifai_channel import ClarifaiChannel
        from clarifai_grpc.grpc.api import resources_pb2, service_pb2, service_pb2_grpc

        channel = ClarifaiChannel.get_grpc_channel(
            base=f"localhost:{grpc_port}", root_certificates_path=str(certs / "ca.pem")
        )
        stub = service_pb2_grpc.V2Stub(channel)
        request = service_pb2.PostModelOutputsRequest(
            user_app_id=resources_pb2.UserAppIDSet(user_id="builtin", app_id="main"),
            model_id=args.model,
            inputs=[
                resources_pb2.Input(
                    data=resources_pb2.Data(image=resources_pb2.Image(base64=image))
                )
            ],
        )
        metadata = (("authorization", f"Key {secret}"),)

        def grpc_call(i: int) -> None:
            r = stub.PostModelOutputs(request, metadata=metadata, timeout=30)
            if r.status.code != 10000:
                raise RuntimeError(r.status)

        rest_call(0)
        grpc_call(0)  # warm both paths (model load, connections)
        benchlib.run_load(rest_call, 50, args.c)
        benchlib.run_load(grpc_call, 50, args.c)
        r = benchlib.run_load(rest_call, args.n, args.c)
        g = benchlib.run_load(grpc_call, args.n, args.c)
        print(f"PostModelOutputs {args.model}, concurrency {args.c}")
        print(f"  REST (gunicorn 2x4)  {benchlib.fmt(r)}")
        print(f"  gRPC (TLS)           {benchlib.fmt(g)}")
        print(
            f"  gRPC/REST throughput ratio {g['rps'] / r['rps']:.2f}, p99 ratio {g['p99'] / r['p99']:.2f}"
        )
    finally:
        benchlib.stop(rest)
        benchlib.stop(grpc_proc)


if __name__ == "__main__":
    main()
