#!/usr/bin/env python
"""PostModelOutputs through the production servers, this commit beside the commit before the
capture engine moved out of the serving process, measured in the same run.

    COLLECTORS_DEV=1 .venv/bin/python scripts/bench_servers.py [--rounds 3] [--seconds 8]

Starts, for this commit: gunicorn (REST, -w 2 --threads 4 --reuse-port: the kernel spreads the
connections over both workers), `manage.py grpcserver` (TLS) and the
capture agent; for the base commit (`--base`, default: the parent of the commit that added the
capture agent), checked out in a temporary git worktree: its gunicorn and grpcserver, on its own
database. Load comes from C programs on the same machine, so the load generator costs little
CPU: `wrk` for REST and `h2load` (nghttp2) for gRPC, with a request framed as gRPC
(apt-get install wrk nghttp2-client).

Scenarios, in a random order per round (seeded), each after a warm-up and a drain (the agent has
committed everything spooled so far), every one twice per round for the A/A noise floor:

  saturation throughput at --concurrency (req/s):
    cur-rest, cur-rest-b, base-rest, cur-grpc, cur-grpc-b, base-grpc     (no collector)
    cur-rest-capture, cur-grpc-capture  (one collector capturing every prediction; no worker
                                         runs, the agent does: its CPU is the serving host's)
  latency, one request at a time (wrk -c 1: p50, p99):
    lat-off, lat-off-b, lat-on

Prints the figures, the ratios (this/base, capture/no capture, gRPC/REST) and the A/A ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (
    ROOT,
    bench_env,
    cpu_by_group,
    cpu_delta,
    ensure_database,
    free_port,
    spool_backlog,
    wait_port,
)

SENTIMENT = ("sentiment", "996e3c70d6372b1e7e3c10875ebd2b8b")
BODY = {"inputs": [{"data": {"text": {"raw": "what a lovely, sunny day"}}}]}
REST_PATH = f"/v2/users/builtin/apps/main/models/{SENTIMENT[0]}/versions/{SENTIMENT[1]}/outputs"
GRPC_PATH = "/clarifai.api.V2/PostModelOutputs"


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def default_base() -> str:
    added = git(
        "log", "--format=%H", "-1", "--diff-filter=A", "--", "collectors_module/capture/agent.py"
    )
    return git("rev-parse", f"{added}^")


class Stack:
    """gunicorn + grpcserver (+ the capture agent) of one checkout, on its own database."""

    def __init__(
        self, name: str, tree: Path, env: dict, work: Path, agent: bool, grpc_processes: int = 1
    ):
        self.name, self.tree, self.env, self.work = name, tree, env, work
        self.grpc_processes = grpc_processes
        self.agent_priority = ""
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.procs: list[subprocess.Popen] = []
        self.agent = agent
        self.certs = work / f"certs-{name}"

    def _start(self, label: str, cmd: list[str]) -> subprocess.Popen:
        with open(self.work / f"{self.name}-{label}.log", "wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=self.tree, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=self.tree, env=self.env, check=True,
            capture_output=True, text=True,
        ).stdout  # fmt: skip

    def start(self) -> None:
        self.manage("migrate", "-v", "0")
        self.manage("devcert", str(self.certs))
        self._start(
            "gunicorn",
            [sys.executable, "-m", "gunicorn", "collectors_module.wsgi", "-w", "2", "--threads",
             "4", "--reuse-port", "-b", f"127.0.0.1:{self.rest_port}", "--log-level", "warning"],
        )  # fmt: skip
        self._start(
            "grpc",
            [sys.executable, "manage.py", "grpcserver", "--address", f"127.0.0.1:{self.grpc_port}",
             "--cert", str(self.certs / "server.pem"), "--key", str(self.certs / "server.key"),
             *(["--processes", str(self.grpc_processes)] if self.grpc_processes > 1 else [])],
        )  # fmt: skip
        if self.agent:
            self._start("agent", [sys.executable, "manage.py", "captureagent",
                                  *(["--priority", self.agent_priority] if self.agent_priority else [])])  # fmt: skip
        wait_port(self.rest_port, 60)
        wait_port(self.grpc_port, 60)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


SETUP = """
import json, sys, uuid
import django
django.setup()
from collectors_module.accounts.services import key_create, user_create
try:
    from collectors_module.accounts.services import user_set_plan
except ImportError:
    user_set_plan = None
from collectors_module.applications.services import app_create
name = "bench" + uuid.uuid4().hex[:8]
user, _ = user_create(user_id=name)
if user_set_plan:
    user = user_set_plan(user=user, plan="professional")
app = app_create(owner=user, app_id="bench")
key = key_create(owner=user, scopes=["All"], description="bench")
print(json.dumps({"user": name, "secret": key.secret, "key_id": key.key.public_id}))
"""

COLLECTOR = """
import json, sys
import django
django.setup()
from clarifai_grpc.grpc.api import resources_pb2
from collectors_module.accounts.models import User
from collectors_module.applications.models import App
from collectors_module.collectors.services import collector_create, collector_set_status
from collectors_module.core.protojson import from_dict
a = json.loads(sys.argv[1])
user = User.objects.get(username=a["user"])
app = App.objects.get(owner=user, public_id="bench")
from collectors_module.collectors.models import Collector
if not Collector.objects.filter(app=app, public_id="all").exists():
    pb = from_dict({"id": "all", "pre_queue_random_sample": 1.0, "status": {"code": 52002},
        "collector_source": {"api_post_model_outputs_collector_source": {
            "model_user_id": "builtin", "model_app_id": "main", "model_id": "sentiment",
            "model_version_id": "996e3c70d6372b1e7e3c10875ebd2b8b",
            "post_inputs_key_id": a["key_id"], "caller_user_id": a["user"]}}},
        resources_pb2.Collector)
    collector_create(app=app, actor=user, collector_pb=pb)
collector_set_status(app=app, collector_id="all", active=a["active"])
"""


CLEAR = """
import django
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("DELETE FROM collectors_capture")
"""

COUNTS = """
import json, sys
import django
django.setup()
from django.db.models import Sum
from collectors_module.capture.models import Capture, CollectorCounter
from collectors_module.collectors.models import Collector
a = json.loads(sys.argv[1])
c = Collector.objects.get(app__owner__username=a["user"], public_id="all")
out = dict(CollectorCounter.objects.filter(collector=c).values_list("metric").annotate(n=Sum("count")))
out["rows"] = Capture.objects.filter(collector=c).count()
print(json.dumps(out))
"""


def run_py(stack: Stack, code: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=stack.tree, env=stack.env, check=True,
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def wrk(url: str, secret: str, seconds: float, concurrency: int, work: Path) -> dict:
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Key {secret}"\n'
    )
    threads = max(1, min(2, concurrency))
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    lat = {}
    for q, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[q] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return {"rps": rps, "errors": int(non2xx.group(1)) if non2xx else 0, "p50": lat.get("50"),
            "p99": lat.get("99")}  # fmt: skip


def h2load(
    port: int, secret: str, seconds: float, concurrency: int, work: Path, connections: int = 16
) -> dict:
    from clarifai_grpc.grpc.api import resources_pb2, service_pb2

    req = service_pb2.PostModelOutputsRequest(
        user_app_id=resources_pb2.UserAppIDSet(user_id="builtin", app_id="main"),
        model_id=SENTIMENT[0],
        version_id=SENTIMENT[1],
        inputs=[
            resources_pb2.Input(
                data=resources_pb2.Data(text={"raw": BODY["inputs"][0]["data"]["text"]["raw"]})
            )
        ],
    ).SerializeToString()
    frame = work / "grpc-request.bin"
    frame.write_bytes(b"\x00" + len(req).to_bytes(4, "big") + req)
    # 16 connections: enough for SO_REUSEPORT to spread them evenly over the server processes
    # (with 4 or 8, one process often got most of them, and the A/A ratio moved by 15 %).
    clients = max(1, min(concurrency, connections))
    out = subprocess.run(
        ["h2load", "-D", str(max(1, round(seconds))), "-c", str(clients), "-m", str(max(1, concurrency // clients)),
         "-d", str(frame), "-H", "content-type: application/grpc", "-H", "te: trailers",
         "-H", f"authorization: Key {secret}", f"https://127.0.0.1:{port}{GRPC_PATH}"],
        capture_output=True, text=True,
    )  # fmt: skip
    out = out.stdout + out.stderr
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    done = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out
    )
    if not rps or not codes:
        raise SystemExit(f"h2load output not understood:\n{out[-2000:]}")
    errors = int(done.group(3)) + int(codes.group(3)) + int(codes.group(4)) if done else 0
    return {"rps": float(rps.group(1)), "errors": errors, "p50": None, "p99": None}


def grpc_check(port: int, secret: str, ca: Path) -> None:
    """The framed request really predicts (a real client, same bytes)."""
    from clarifai_grpc.channel.clarifai_channel import ClarifaiChannel
    from clarifai_grpc.grpc.api import resources_pb2, service_pb2, service_pb2_grpc

    channel = ClarifaiChannel.get_grpc_channel(
        base=f"localhost:{port}", root_certificates_path=str(ca)
    )
    stub = service_pb2_grpc.V2Stub(channel)
    r = stub.PostModelOutputs(
        service_pb2.PostModelOutputsRequest(
            user_app_id=resources_pb2.UserAppIDSet(user_id="builtin", app_id="main"),
            model_id=SENTIMENT[0],
            version_id=SENTIMENT[1],
            inputs=[resources_pb2.Input(data=resources_pb2.Data(text={"raw": "good"}))],
        ),
        metadata=(("authorization", f"Key {secret}"),),
    )
    channel.close()
    if r.status.code != 10000:
        raise SystemExit(f"gRPC predict failed: {r.status}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", default="")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-seconds", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10_000)
    parser.add_argument("--json", default="")
    parser.add_argument(
        "--grpc-processes", type=int, default=2, help="this commit's grpcserver --processes"
    )
    parser.add_argument(
        "--agent-priority", default="", help="captureagent --priority (default: its setting)"
    )
    parser.add_argument(
        "--grpc-connections", type=int, default=16, help="h2load connections (streams: the rest)"
    )
    parser.add_argument(
        "--spool-parent", default="", help="make the spool folder here (default: the work folder)"
    )
    parser.add_argument("--scenarios", default="", help="comma-separated subset (default: all)")
    args = parser.parse_args()
    for tool in ("wrk", "h2load"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed: apt-get install wrk nghttp2-client")
    rng = random.Random(args.seed)
    base = args.base or default_base()
    work = Path(tempfile.mkdtemp(prefix="bench-servers-"))
    tree = work / "base-tree"
    spool_dir = Path(tempfile.mkdtemp(prefix="spool-", dir=args.spool_parent or work))
    git("worktree", "add", "--detach", str(tree), base)
    pg = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    cur_env = bench_env(
        DATABASE_URL=f"{pg}/collectors_bench",
        # No worker runs here, so every capture stays pending: without this the backlog cap
        # (COLLECTORS_MAX_PENDING_TOTAL) would start dropping captures as `backlog_full` and the
        # capture scenarios would measure predictions that capture nothing.
        COLLECTORS_MAX_PENDING_TOTAL="0",
        COLLECTORS_SPOOL_DIR=str(spool_dir),
        COLLECTORS_VAR_DIR=str(work / "var-cur"),
        CELERY_BROKER_URL=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12"),
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13"),
    )
    base_env = dict(
        cur_env,
        DATABASE_URL=f"{pg}/collectors_bench_base",
        COLLECTORS_VAR_DIR=str(work / "var-base"),
    )
    for env in (cur_env, base_env):
        env.pop("COLLECTORS_FAULTS", None)
        ensure_database({"DATABASE_URL": env["DATABASE_URL"]}, migrate=False)
    stacks = {
        "cur": Stack("cur", ROOT, cur_env, work, agent=True, grpc_processes=args.grpc_processes),
        "base": Stack("base", tree, base_env, work, agent=False),
    }
    stacks["cur"].agent_priority = args.agent_priority
    results: dict[str, list[dict]] = {}
    try:
        for s in stacks.values():
            s.start()
        run_py(stacks["cur"], CLEAR)  # earlier runs' pending captures (this database is ours)
        creds = {k: json.loads(run_py(s, SETUP).splitlines()[-1]) for k, s in stacks.items()}
        cur, cur_cred = stacks["cur"], creds["cur"]
        grpc_check(cur.grpc_port, cur_cred["secret"], cur.certs / "ca.pem")
        grpc_check(
            stacks["base"].grpc_port, creds["base"]["secret"], stacks["base"].certs / "ca.pem"
        )

        def collector(active: bool) -> None:
            run_py(cur, COLLECTOR, json.dumps({**cur_cred, "active": active}))
            time.sleep(1.0)  # every server process rebuilds its capture index
            drain()

        def drain() -> None:
            deadline = time.monotonic() + 120
            while spool_backlog(spool_dir) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)

        def measure(name: str) -> dict:
            side = "base" if name.startswith("base") else "cur"
            stack, secret = stacks[side], creds[side]["secret"]
            if name.startswith("lat"):
                url = f"http://127.0.0.1:{stack.rest_port}{REST_PATH}"
                wrk(url, secret, 1, 1, work)
                return wrk(url, secret, args.latency_seconds, 1, work)
            if "rest" in name:
                url = f"http://127.0.0.1:{stack.rest_port}{REST_PATH}"
                wrk(url, secret, 2, args.concurrency, work)
                before = cpu_by_group()
                got = wrk(url, secret, args.seconds, args.concurrency, work)
            else:
                h2load(stack.grpc_port, secret, 2, args.concurrency, work, args.grpc_connections)
                before = cpu_by_group()
                got = h2load(
                    stack.grpc_port, secret, args.seconds, args.concurrency, work,
                    args.grpc_connections,
                )  # fmt: skip
            # Where the CPU went during the measurement (seconds per process group).
            got["cpu"] = cpu_delta(before, cpu_by_group())
            return got

        names = [
            "cur-rest", "cur-rest-b", "base-rest", "cur-grpc", "cur-grpc-b", "base-grpc",
            "cur-rest-capture", "cur-grpc-capture", "lat-off", "lat-off-b", "lat-on",
        ]  # fmt: skip
        if args.scenarios:
            names = [n for n in names if n in args.scenarios.split(",")]
        active = None
        for r in range(args.rounds):
            order = list(names)
            rng.shuffle(order)
            print(f"round {r + 1}/{args.rounds}: {' '.join(order)}", flush=True)
            for name in order:
                want = name.endswith("-capture") or name == "lat-on"
                if want != active:
                    collector(want)
                    active = want
                else:
                    drain()
                got = measure(name)
                if want:  # what the agent left for later, and how long it took to catch up
                    got["backlog_kb"] = round(spool_backlog(spool_dir) / 1024, 1)
                    t0 = time.monotonic()
                    drain()
                    got["catch_up_s"] = round(time.monotonic() - t0 - 0.5, 2)
                results.setdefault(name, []).append(got)
                print(f"  {name:<18} {json.dumps(got)}", flush=True)
        collector(False)
        captured = json.loads(run_py(cur, COUNTS, json.dumps(cur_cred)).splitlines()[-1])
    finally:
        for s in stacks.values():
            s.stop()
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(spool_dir, ignore_errors=True)

    def median(name: str, field: str) -> float:
        values = sorted(x[field] for x in results[name] if x[field] is not None)
        return values[len(values) // 2] if values else float("nan")

    print(
        f"\nthis commit {git('rev-parse', '--short', 'HEAD')} vs base {base[:8]}; builtin sentiment, "
        f"1 text input; {args.rounds} rounds, random order (seed {args.seed}); throughput at "
        f"concurrency {args.concurrency} over {args.seconds:g} s (median of rounds); "
        f"{os.cpu_count()} cores; gRPC {args.grpc_processes} server process(es); agent priority "
        f"{args.agent_priority or 'default'}; spool in {spool_dir.parent}"
    )
    rows = {n: {f: median(n, f) for f in ("rps", "p50", "p99")} for n in results}
    errors = {n: sum(x["errors"] for x in v) for n, v in results.items()}
    for n in names:
        if n in rows:
            r = rows[n]
            extra = f" p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms" if n.startswith("lat") else ""
            if n.endswith("-capture"):
                left = [x["backlog_kb"] for x in results[n]]
                catch = [x["catch_up_s"] for x in results[n]]
                extra += f"  spool left at the end {left} KiB, agent caught up in {catch} s"
            print(f"  {n:<18} {r['rps']:9.1f} req/s{extra}  errors {errors[n]}")

    dropped = {m: n for m, n in captured.items() if m.startswith("dropped:")}
    print(
        f"\nthe capturing collector: matched {captured.get('matched', 0)}, accepted "
        f"{captured.get('accepted', 0)}, rows {captured.get('rows', 0)}, dropped {dropped or 'none'}"
    )

    def ratio(a: str, b: str, field: str = "rps") -> float:
        return rows[a][field] / rows[b][field]

    if args.scenarios:
        return 0
    print("\nratios (A/A beside each):")
    print(
        f"  REST this/base          {ratio('cur-rest', 'base-rest'):.2f}x   "
        f"(A/A cur-rest-b/cur-rest {ratio('cur-rest-b', 'cur-rest'):.3f})"
    )
    print(
        f"  gRPC this/base          {ratio('cur-grpc', 'base-grpc'):.2f}x   "
        f"(A/A cur-grpc-b/cur-grpc {ratio('cur-grpc-b', 'cur-grpc'):.3f})"
    )
    print(f"  gRPC/REST (this)        {ratio('cur-grpc', 'cur-rest'):.2f}")
    print(
        f"  REST capture/no capture {ratio('cur-rest-capture', 'cur-rest'):.3f}   "
        f"(A/A {ratio('cur-rest-b', 'cur-rest'):.3f})"
    )
    print(
        f"  gRPC capture/no capture {ratio('cur-grpc-capture', 'cur-grpc'):.3f}   "
        f"(A/A {ratio('cur-grpc-b', 'cur-grpc'):.3f})"
    )
    print(
        f"  latency c=1 p50 on/off  {ratio('lat-on', 'lat-off', 'p50'):.3f}   "
        f"(A/A {ratio('lat-off-b', 'lat-off', 'p50'):.3f}); p99 delta "
        f"{rows['lat-on']['p99'] - rows['lat-off']['p99']:+.2f} ms (A/A "
        f"{rows['lat-off-b']['p99'] - rows['lat-off']['p99']:+.2f} ms)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "errors": errors, "raw": results,
                                               "base": base, "seed": args.seed}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
