"""Clarifai's own clients run against a live TLS gRPC server: the Python SDK (clarifai 12.4.1, in
its own virtual environment .venv-sdk) and the Node.js client (clarifai-nodejs-grpc 11.11.0,
installed with npm under tests/clients/node). `.ci/run` installs both; locally the tests skip
with the command to run when one is missing. The scripts run as subprocesses, configured only
through the environment variables the README documents."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"
NODE_DIR = HERE / "node"


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    if not SDK_PYTHON.exists():
        pytest.skip(
            ".venv-sdk is missing (the Python SDK's own environment): create it with "
            "`python3 -m venv .venv-sdk && .venv-sdk/bin/pip install -r "
            "tests/clients/python/requirements.txt` (.ci/run does this)"
        )
    return SDK_PYTHON


@pytest.fixture(scope="session")
def node_bin() -> str:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "clarifai-nodejs-grpc").is_dir():
        pytest.skip(
            "Node.js or clarifai-nodejs-grpc is missing: run `npm ci --prefix tests/clients/node` "
            "(.ci/run does this)"
        )
    return node


def _clean_env(home: Path) -> dict:
    """The test process's environment without anything Clarifai- or gRPC-related, and a home of
    its own (the SDK also reads a CLI config from ~/.config/clarifai)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLARIFAI_", "GRPC_", "PYTEST_", "DJANGO_", "COLLECTORS_"))
    }
    env["HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def last_json_line(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON report in the output:\n{stdout[-3000:]}")


@pytest.fixture
def run_sdk(sdk_python, grpc_server, dev_certs, tmp_path):
    """Run a Python script in .venv-sdk against the live server: `run_sdk(path, cfg, pat, user)`.
    Returns (report dict, completed process)."""

    def run(script: Path, cfg: dict, *, pat: str, user_id: str, timeout: float = 300):
        env = _clean_env(tmp_path)
        env.update(
            {
                "CLARIFAI_API_BASE": f"https://{grpc_server}",
                "CLARIFAI_ROOT_CERTIFICATES_PATH": str(dev_certs["ca"]),
                "CLARIFAI_PAT": pat,
                "CLARIFAI_USER_ID": user_id,
            }
        )
        done = subprocess.run(
            [str(sdk_python), str(script), json.dumps(cfg)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, (
            f"{script.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
        return last_json_line(done.stdout), done

    return run


@pytest.fixture
def run_node(node_bin, grpc_server, dev_certs, tmp_path):
    """Run a Node.js script (under tests/clients/node) against the live server with
    CLARIFAI_GRPC_BASE and GRPC_DEFAULT_SSL_ROOTS_FILE_PATH. Returns the JSON report."""

    def run(script: str, cfg: dict, timeout: float = 120) -> dict:
        env = _clean_env(tmp_path)
        env.update(
            {
                "CLARIFAI_GRPC_BASE": grpc_server,
                "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(dev_certs["ca"]),
            }
        )
        done = subprocess.run(
            [node_bin, str(NODE_DIR / script), json.dumps(cfg)],
            env=env,
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, (
            f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        return last_json_line(done.stdout)

    return run
