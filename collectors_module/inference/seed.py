"""Seed the system user `builtin` and its public app `main` with the built-in models.

Used by the data migration (with historical models) and after a test-database flush (post_migrate),
so builtin/main always exists. Idempotent: descriptions and concepts follow the catalog.
"""

from __future__ import annotations

from django.contrib.auth.hashers import make_password

from .runners.builtin import BUILTIN_APP_ID, BUILTIN_USER_ID, CATALOG

PUBLIC = 50


def seed_builtin_models(User, App, Model, ModelVersion) -> None:
    user = User.objects.filter(username=BUILTIN_USER_ID).first()
    if user is None:
        user = User.objects.create(
            username=BUILTIN_USER_ID,
            password=make_password(None),
            plan="enterprise",
            first_name="Built-in models",
        )
    app, _ = App.objects.get_or_create(
        owner=user,
        public_id=BUILTIN_APP_ID,
        defaults={
            "description": "Built-in models that run offline on this server",
            "visibility": PUBLIC,
        },
    )
    if app.visibility != PUBLIC:
        App.objects.filter(pk=app.pk).update(visibility=PUBLIC)
    for spec in CATALOG:
        output_info = (
            {"data": {"concepts": [{"id": c, "name": c} for c in spec.concepts]}}
            if spec.concepts
            else {}
        )
        model, _ = Model.objects.update_or_create(
            app=app,
            public_id=spec.model_id,
            defaults={
                "name": spec.title,
                "description": spec.description,
                "model_type_id": spec.model_type_id,
                "visibility": PUBLIC,
                "output_info": output_info,
            },
        )
        ModelVersion.objects.update_or_create(
            model=model,
            public_id=spec.version_id,
            defaults={
                "description": spec.title,
                "output_info": output_info,
                "runner": spec.runner,
                "runner_config": {},
            },
        )


def ensure_builtin_models(**_kwargs) -> None:
    """post_migrate receiver (and a helper for the quick start): make sure builtin/main is seeded."""
    from django.contrib.auth import get_user_model

    from collectors_module.applications.models import App

    from .models import Model, ModelVersion

    seed_builtin_models(get_user_model(), App, Model, ModelVersion)
