from django.apps import AppConfig


class CollectorsConfig(AppConfig):
    name = "collectors_module.collectors"
    label = "collectors"

    def ready(self) -> None:
        # Inside ready(): these import models, which load only once the app registry is ready.
        from collectors_module.core import generations
        from collectors_module.inference.hooks import register_model_users

        from .models import Collector
        from .selectors import collectors_using

        register_model_users(collectors_using)
        # The capture engine keeps an index of active collectors in every serving process.
        generations.watch(Collector)
