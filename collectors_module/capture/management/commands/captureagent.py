"""`python manage.py captureagent [--spool DIR] [--priority normal|low|idle]`: commit this
host's spooled captures."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

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
        parser.add_argument(
            "--priority",
            choices=agent.PRIORITIES,
            default=None,
            help="CPU priority beside the servers (default: the COLLECTORS_AGENT_PRIORITY setting)",
        )

    def handle(self, *args, **opts):
        directory = Path(opts["spool"]) if opts["spool"] else conf.spool_dir()
        priority = opts["priority"] or conf.agent_priority()
        try:
            agent.set_priority(priority)  # first: the threads started later inherit it
        except (OSError, ValueError) as exc:
            raise CommandError(f"could not set the agent's priority to {priority}: {exc}") from exc
        stop = threading.Event()

        def _stop(signum, frame):
            stop.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        self.stdout.write(f"capture agent: spool {directory}, priority {priority}")
        self.stdout.flush()
        agent.serve(directory, stop)
