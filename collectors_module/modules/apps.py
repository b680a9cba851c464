from django.apps import AppConfig


class ModulesConfig(AppConfig):
    name = "collectors_module.modules"
    label = "modules"
