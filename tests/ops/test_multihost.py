"""The CI-sized multi-host run (scripts/multihost.py): PostgreSQL, Redis, S3, two web hosts, two
worker hosts and the client each in its own network namespace; one worker host partitioned for
longer than the lease while captures are in flight, then healed; the chaos oracle finds 0 lost,
0 duplicated, 0 phantoms. And every namespace and link is gone afterwards, also when the run is
stopped half-way. Needs root (CI runs as root)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.support.capture import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.worker,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2 (ip netns)"
    ),
]
SCRIPT = str(ROOT / "scripts" / "multihost.py")


def leftovers(tag: str) -> list[str]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line for line in (netns + links).splitlines() if tag in line]


def env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def test_partitioned_worker_host_loses_nothing_and_everything_is_cleaned_up(tmp_path):
    run_id = uuid.uuid4().hex[:4]
    logdir = tmp_path / "mh"
    done = subprocess.run(
        [sys.executable, SCRIPT, "--run-id", run_id, "--logdir", str(logdir),
         "--predictions", "120", "--seconds", "30", "--lease", "6", "--drain-seconds", "120"],
        cwd=ROOT, env=env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert leftovers(f"cmh{run_id}") == []
    report_path = logdir / "report.json"
    assert report_path.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert done.returncode == 0, json.dumps(report, indent=1)[-4000:]
    assert report["ok"] is True
    assert (report["lost"], report["duplicated"], report["phantoms"]) == (0, 0, 0)
    assert report["prediction_errors"] == 0
    part = report["partition"]
    assert part["seconds"] > part["lease_seconds"]
    assert part["in_flight_at_partition"] > 0
    assert part["in_flight_finished"] == f"{part['in_flight_at_partition']}/" + str(
        part["in_flight_at_partition"]
    )
    hosts = report["hosts"]
    assert hosts["web1"]["predictions_ok"] == hosts["web2"]["predictions_ok"] == 60
    assert hosts["web1"]["captures_spooled"] > 0
    assert hosts["web2"]["captures_spooled"] > 0
    ingested = hosts["work1"]["captures_ingested"] + hosts["work2"]["captures_ingested"]
    assert ingested == report["outcome"]["ingested"]  # the per-host metrics add up
    assert hosts["work2"]["captures_ingested"] > 0
    print(json.dumps({"partition": part, "hosts": hosts}, indent=1))


def test_a_run_stopped_half_way_leaves_no_namespace_or_link(tmp_path):
    run_id = uuid.uuid4().hex[:4]
    logdir = tmp_path / "mh"
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, "--run-id", run_id, "--logdir", str(logdir),
         "--predictions", "40", "--seconds", "20", "--lease", "6"],
        cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the network and PostgreSQL are up
            if (logdir / "postgres.log").exists() and len(leftovers(f"cmh{run_id}")) >= 8:
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        assert leftovers(f"cmh{run_id}")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            subprocess.run([sys.executable, SCRIPT, "--cleanup-only", run_id], timeout=120)
    assert "left over: nothing" in out, out[-3000:]
    assert leftovers(f"cmh{run_id}") == []
    assert proc.returncode != 0
