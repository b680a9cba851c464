from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "collectors_module.datasets"
    label = "datasets"
