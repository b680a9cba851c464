"""`python manage.py healthcheck [web|worker|agent] [--json]`: a probe for systemd or Kubernetes.

Exit status 0 when ready, 1 when not. `web` (the default): the database, Redis and the broker
answer. `worker`: the same, and a fresh heartbeat of a worker on this host (or of the one named
with `--name`). `agent`: the database answers and the capture agent of the spool holds its lock
and beats.
"""

from __future__ import annotations

import json
import socket

from django.conf import settings
from django.core.management.base import BaseCommand

from collectors_module.capture import selectors as capture_selectors

from ... import checks, heartbeat


class Command(BaseCommand):
    help = "Readiness probe: exit 0 when this tier is ready, 1 when it is not."

    def add_arguments(self, parser):
        parser.add_argument("tier", nargs="?", default="web", choices=["web", "worker", "agent"])
        parser.add_argument(
            "--name", help="worker: the Celery node name (default: any on this host)"
        )
        parser.add_argument(
            "--spool", help="agent: the spool folder (default COLLECTORS_SPOOL_DIR)"
        )
        parser.add_argument("--json", action="store_true", help="print the checks as JSON")

    def handle(self, *args, **opts):
        result = checks.readiness(use_cache=False)
        tier = opts["tier"]
        if tier == "worker":
            try:
                beats = heartbeat.fresh_heartbeats()
            except Exception as exc:
                beats, error = [], type(exc).__name__
            else:
                error = ""
            host = socket.gethostname()
            mine = [
                b for b in beats
                if (b.get("name") == opts["name"] if opts["name"] else b.get("host") == host)
            ]  # fmt: skip
            result["checks"]["heartbeat"] = {"ok": bool(mine), "fresh": len(mine)}
            if error:
                result["checks"]["heartbeat"]["error"] = error
            result["ready"] = result["ready"] and bool(mine)
        elif tier == "agent":
            folder = opts["spool"] or settings.COLLECTORS_SPOOL_DIR
            alive = capture_selectors.agent_alive(folder)
            result["checks"]["agent"] = {"ok": alive}
            result["ready"] = result["checks"]["database"]["ok"] and alive
        if opts["json"]:
            self.stdout.write(json.dumps(result, sort_keys=True))
        else:
            for name, check in result["checks"].items():
                self.stdout.write(
                    f"{name}: {'ok' if check['ok'] else check.get('error', 'failed')}"
                )
            self.stdout.write("ready" if result["ready"] else "NOT READY")
        if not result["ready"]:
            raise SystemExit(1)
