from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "collectors_module.core"
    label = "core"
