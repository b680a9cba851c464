from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


class InferenceConfig(AppConfig):
    name = "collectors_module.inference"
    label = "inference"

    def ready(self) -> None:
        # Inside ready(): these import models, which load only once the app registry is ready.
        from collectors_module.core import generations

        from .models import Model, ModelVersion

        # Model versions are cached by the predict path of every serving process.
        generations.watch(Model)
        generations.watch(ModelVersion)
        # The data migration seeds builtin/main; this restores it after a flush (e.g. between
        # transactional tests), which empties every table but re-sends post_migrate.
        post_migrate.connect(
            _seed_after_migrate, sender=self, dispatch_uid="inference.seed_builtin"
        )


def _seed_after_migrate(sender, using="default", **kwargs) -> None:

    # The seed module imports models: resolved when post_migrate fires, not at import.
    from .seed import ensure_builtin_models

    tables = connections[using].introspection.table_names()
    if "inference_modelversion" in tables and "applications_app" in tables:
        ensure_builtin_models()
