from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: the Prometheus endpoint, liveness and readiness (HTTP, gRPC, the worker
    heartbeat, `manage.py healthcheck`). See docs/deployment.md."""

    name = "collectors_module.ops"
    label = "ops"
