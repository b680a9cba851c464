from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "collectors_module.inference"
    label = "inference"
