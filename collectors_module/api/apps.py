from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "collectors_module.api"
    label = "api"
