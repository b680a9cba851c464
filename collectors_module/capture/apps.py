from django.apps import AppConfig


class CaptureConfig(AppConfig):
    """The capture engine: admission on the predict path, the spool and its agent, the outbox,
    the relay, the worker (claim, decide, commit) and the sweeper. See docs/capture-engine.md."""

    name = "collectors_module.capture"
    label = "capture"

    def ready(self) -> None:
        # Inside ready(): the hook and the chores import models, which load only once the registry is ready.
        from collectors_module.inference.hooks import register_after_predict

        from . import checks, counters, limits, matching
        from .admission import on_prediction

        checks.register_checks()
        matching.install()
        limits.install()
        counters.install()
        register_after_predict(on_prediction)
