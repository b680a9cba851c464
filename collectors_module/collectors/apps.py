from django.apps import AppConfig


class CollectorsConfig(AppConfig):
    name = "collectors_module.collectors"
    label = "collectors"

    def ready(self) -> None:
        # pipeline helper: delivery-settings system checks (collectors.E001-E003).
        # collectors-api helper: capture on predict (after-predict hook of inference).
        from collectors_module.inference.hooks import register_after_predict

        from . import checks  # noqa: F401
        from .capture import on_prediction

        register_after_predict(on_prediction)
