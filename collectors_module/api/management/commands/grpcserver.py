"""`python manage.py grpcserver [--address HOST:PORT] [--cert FILE --key FILE] [--insecure]
[--processes N]`."""

from __future__ import annotations

import argparse
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from collectors_module.api.grpc.processes import serve_processes
from collectors_module.api.grpc.server import ServerConfig, serve_forever


class Command(BaseCommand):
    help = "Serve the Clarifai V2 gRPC API (TLS unless --insecure)."

    def add_arguments(self, parser):
        parser.add_argument("--address", default="127.0.0.1:50443", help="HOST:PORT to bind")
        parser.add_argument("--cert", help="PEM server certificate (chain)")
        parser.add_argument("--key", help="PEM private key")
        parser.add_argument(
            "--insecure", action="store_true", help="plaintext port (off by default)"
        )
        parser.add_argument(
            "--workers", type=int, default=0, help="thread pool size (default 4 x cores)"
        )
        parser.add_argument(
            "--grace", type=float, default=30.0, help="seconds to finish calls on stop"
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=None,
            help="server processes sharing the port (default GRPC_PROCESSES, 1); one per core",
        )
        parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)

    def handle(self, *args, **opts):
        if not opts["insecure"] and not (opts["cert"] and opts["key"]):
            raise CommandError("give --cert and --key (see `manage.py devcert DIR`), or --insecure")
        config = ServerConfig(
            address=opts["address"],
            cert_file=opts["cert"],
            key_file=opts["key"],
            insecure=opts["insecure"],
            max_workers=opts["workers"],
            grace_seconds=opts["grace"],
            reuse_port=opts["reuse_port"],
        )
        processes = opts["processes"] if opts["processes"] is not None else settings.GRPC_PROCESSES
        if processes < 1 or processes > 64:
            raise CommandError("--processes must be between 1 and 64")

        def ready(port: int) -> None:
            mode = "plaintext" if config.insecure else "TLS"
            host = config.address.rsplit(":", 1)[0]
            self.stdout.write(f"gRPC ({mode}) listening on {host}:{port}")
            self.stdout.flush()
            sys.stdout.flush()

        try:
            if processes == 1 or config.reuse_port:
                serve_forever(config, on_ready=ready)
                return
            child_args = ["--grace", str(config.grace_seconds), "--processes", "1"]
            if config.insecure:
                child_args.append("--insecure")
            else:
                child_args += ["--cert", config.cert_file, "--key", config.key_file]
            if config.max_workers:
                child_args += ["--workers", str(config.max_workers)]
            code = serve_processes(
                config.address, processes, child_args, config.grace_seconds, on_ready=ready
            )
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if code:
            sys.exit(code)
