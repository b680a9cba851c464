"""`python manage.py captureagent [--spool DIR]`: commit this host's spooled captures."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from django.core.management.base import BaseCommand

from collectors_module.capture import agent, conf


class Command(BaseCommand):
    help = (
        "Run the capture agent of this host: commit the captures that the web and gRPC servers "
        "spool, and publish them to the workers. A second agent on the same spool waits as a "
        "standby and takes over when the first one stops."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--spool", default="", help="spool folder (default: the COLLECTORS_SPOOL_DIR setting)"
        )

    def handle(self, *args, **opts):
        directory = Path(opts["spool"]) if opts["spool"] else conf.spool_dir()
        stop = threading.Event()

        def _stop(signum, frame):
            stop.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        self.stdout.write(f"capture agent: spool {directory}")
        self.stdout.flush()
        agent.serve(directory, stop)
