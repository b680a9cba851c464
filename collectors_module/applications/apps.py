from django.apps import AppConfig


class ApplicationsConfig(AppConfig):
    name = "collectors_module.applications"
    label = "applications"

    def ready(self) -> None:
        # Inside ready(): these import models, which load only once the app registry is ready.
        from collectors_module.core import generations

        from .models import App

        generations.watch(App)
