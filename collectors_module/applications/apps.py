from django.apps import AppConfig


class ApplicationsConfig(AppConfig):
    name = "collectors_module.applications"
    label = "applications"
