from django.apps import AppConfig


class CollectorsConfig(AppConfig):
    name = "collectors_module.collectors"
    label = "collectors"
