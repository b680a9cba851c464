from django.apps import AppConfig


class InputsConfig(AppConfig):
    name = "collectors_module.inputs"
    label = "inputs"
