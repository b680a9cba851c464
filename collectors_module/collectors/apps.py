from django.apps import AppConfig


class CollectorsConfig(AppConfig):
    name = "collectors_module.collectors"
    label = "collectors"

    def ready(self) -> None:
        from collectors_module.core import generations

        from .models import Collector

        # The capture engine keeps an index of active collectors in every serving process.
        generations.watch(Collector)
