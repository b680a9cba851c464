"""Gunicorn settings module for the web tier: `gunicorn -c python:collectors_module.ops.gunicorn
collectors_module.wsgi`. Marks an exited worker dead for the Prometheus multiprocess files (its
counters stay counted, its live gauges go)."""

import contextlib

from prometheus_client import multiprocess


def child_exit(server, worker) -> None:
    # Gunicorn loads this file before Django is set up: settings cannot be read here; the
    # multiprocess folder is the environment variable prometheus-client reads itself.
    with contextlib.suppress(Exception):
        multiprocess.mark_process_dead(worker.pid)
