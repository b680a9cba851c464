"""Helpers shared by the benchmark scripts: a benchmark database, servers, load and percentiles.

Benchmarks run real processes on this machine: gunicorn for REST, `manage.py grpcserver` for
gRPC, PostgreSQL and Redis as configured by DATABASE_URL / CELERY_BROKER_URL.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/collectors_bench"


def bench_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "COLLECTORS_DEV": "1",
        "DJANGO_SETTINGS_MODULE": "collectors_module.settings",
    }
    env.setdefault("DATABASE_URL", DEFAULT_DB)
    env.update(extra)
    return env


def setup_django(env: dict[str, str]) -> None:
    """This process becomes a serving process configured by `env` (as a deployment is)."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def ensure_database(env: dict[str, str], *, migrate: bool = True) -> None:
    """Create the benchmark database if needed (and migrate it)."""
    url = env["DATABASE_URL"]
    if url.startswith("postgres"):
        name = url.rsplit("/", 1)[1]
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-U", "postgres", name],
            capture_output=True,
            check=False,
        )
    if migrate:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} did not open")


def start_rest(
    env: dict[str, str], port: int, workers: int = 2, threads: int = 4
) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "collectors_module.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "--threads",
            str(threads),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    wait_port(port)
    return proc


def start_grpc(env: dict[str, str], port: int, certs_dir: Path) -> subprocess.Popen:
    subprocess.run(
        [sys.executable, "manage.py", "devcert", str(certs_dir)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "grpcserver",
            "--address",
            f"127.0.0.1:{port}",
            "--cert",
            str(certs_dir / "server.pem"),
            "--key",
            str(certs_dir / "server.key"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def run_load(call: Callable[[int], None], n: int, concurrency: int) -> dict[str, float]:
    """Run `call(i)` n times on `concurrency` threads; latency figures in milliseconds."""
    latencies: list[float] = []
    errors = 0

    def one(i: int) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            call(i)
        except Exception:
            errors += 1
            return
        latencies.append((time.perf_counter() - t0) * 1000)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - start
    return {
        "n": n,
        "errors": errors,
        "rps": n / elapsed if elapsed else 0.0,
        "p50": pct(latencies, 50),
        "p95": pct(latencies, 95),
        "p99": pct(latencies, 99),
        "mean": statistics.fmean(latencies) if latencies else float("nan"),
    }


def fmt(row: dict[str, float]) -> str:
    return (
        f"n={row['n']:>5} err={row['errors']:>3} rps={row['rps']:8.1f} "
        f"p50={row['p50']:7.2f}ms p95={row['p95']:7.2f}ms p99={row['p99']:7.2f}ms"
    )


def spool_backlog(folder: Path) -> int:
    """Spooled bytes the capture agent has not recorded as committed yet."""
    import json

    try:
        offsets = json.loads((Path(folder) / "agent.offsets").read_text())
    except (OSError, ValueError):
        offsets = {}
    total = 0
    for seg in Path(folder).glob("*.seg"):
        try:
            total += max(0, seg.stat().st_size - int(offsets.get(seg.name, 0)))
        except FileNotFoundError:
            continue
    return total


def ratio_table(
    samples: dict[str, list[float]],
    per_round: dict[str, list[float]],
    *,
    base: str,
    control: str,
    unit: str = "ms",
) -> list[dict]:
    """Print p50/p99 per scenario, the p50 ratio and p99 delta to `base` with the per-round
    spread of the ratio, and the A/A control (`control` vs `base`) as the noise floor."""
    b50, b99 = pct(samples[base], 50), pct(samples[base], 99)
    rounds = len(per_round[base])
    print(
        f"\n{'scenario':<14}{'n':>7}{'p50 ' + unit:>10}{'p99 ' + unit:>10}{'p50 ratio':>11}"
        f"{'p99 delta':>11}{'per-round ratio min..max':>28}"
    )
    rows = []
    for name, values in samples.items():
        p50, p99 = pct(values, 50), pct(values, 99)
        ratios = [
            per_round[name][i] / per_round[base][i]
            for i in range(min(rounds, len(per_round[name])))
            if per_round[base][i]
        ]
        spread = f"{min(ratios):.3f}..{max(ratios):.3f}" if ratios else "-"
        label = name + (" (A/A)" if name == control else "")
        print(
            f"{label:<14}{len(values):>7}{p50:>10.3f}{p99:>10.3f}{p50 / b50:>11.3f}"
            f"{p99 - b99:>+11.3f}{spread:>28}"
        )
        rows.append(
            {
                "scenario": name,
                "n": len(values),
                "p50": p50,
                "p99": p99,
                "p50_ratio": p50 / b50,
                "p99_delta": p99 - b99,
                "round_ratio_min": min(ratios) if ratios else None,
                "round_ratio_max": max(ratios) if ratios else None,
            }
        )
    if control in samples:
        noise = abs(pct(samples[control], 50) / b50 - 1)
        print(f"noise floor (A/A {control} vs {base}): p50 ratio off by {noise * 100:.1f} %")
    return rows


CPU_GROUPS = (
    ("agent", "captureagent"),
    ("grpc", "grpcserver"),
    ("gunicorn", "gunicorn"),
    ("postgres", "postgres"),
    ("redis", "redis-server"),
    ("load", "wrk"),
    ("load", "h2load"),
)


def cpu_by_group() -> dict[str, float]:
    """CPU seconds used so far by the processes of each group (by command line), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = (
                Path(entry.path, "cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        group = next((g for g, needle in CPU_GROUPS if needle in cmd), "other")
        fields = stat.rsplit(")", 1)[1].split()
        out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per group between two `cpu_by_group()` readings (processes that exited
    meanwhile are not counted)."""
    return {g: round(after.get(g, 0.0) - before.get(g, 0.0), 2) for g in sorted(after)
            if after.get(g, 0.0) - before.get(g, 0.0) > 0.005}  # fmt: skip
