"""`python manage.py grpcserver [--address HOST:PORT] [--cert FILE --key FILE] [--insecure]`."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

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
        )

        def ready(port: int) -> None:
            mode = "plaintext" if config.insecure else "TLS"
            host = config.address.rsplit(":", 1)[0]
            self.stdout.write(f"gRPC ({mode}) listening on {host}:{port}")
            self.stdout.flush()
            sys.stdout.flush()

        try:
            serve_forever(config, on_ready=ready)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
