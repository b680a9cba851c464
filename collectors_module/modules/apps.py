from importlib import import_module

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db import connections
from django.db.models.signals import post_migrate


class ModulesConfig(AppConfig):
    name = "collectors_module.modules"
    label = "modules"

    def ready(self) -> None:
        # The data migration seeds the catalogue; this restores it after a flush (e.g. between
        # transactional tests), which empties every table but re-sends post_migrate.
        post_migrate.connect(
            _seed_after_migrate, sender=self, dispatch_uid="modules.seed_catalogue"
        )


def _seed_after_migrate(sender, using="default", apps=None, **kwargs) -> None:

    if "modules_module" not in connections[using].introspection.table_names():
        return
    seed = import_module("collectors_module.modules.migrations.0002_seed_collector_module").seed

    seed(apps or global_apps, None)
