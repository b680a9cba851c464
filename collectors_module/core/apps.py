from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "collectors_module.core"
    label = "core"

    def ready(self) -> None:
        # Every migrate (and every test flush, which re-sends post_migrate) leaves the change
        # triggers of the watched tables in place, matching their current columns.
        post_migrate.connect(_install_triggers, sender=self, dispatch_uid="core.triggers")


def _install_triggers(sender, using="default", **kwargs) -> None:
    # generations imports core.models, which cannot load while apps.py itself is imported.
    from .generations import install_triggers

    install_triggers(using)
