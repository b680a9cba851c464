from django.apps import AppConfig


class CollectorsConfig(AppConfig):
    name = "collectors_module.collectors"
    label = "collectors"

    def ready(self) -> None:
        # pipeline helper: delivery-settings system checks (collectors.E001-E003).
        from . import checks  # noqa: F401
