"""Seed the system user `builtin` and its public app `main` with the built-in models, and the
aliases (e.g. `clarifai/main/models/general-image-recognition`, the product page's source model).

Used by the data migrations (with historical models) and after a test-database flush
(post_migrate), so builtin/main always exists. Idempotent: descriptions and concepts follow the
catalog. An alias's user is a system account made here; if a real account already holds that
user id, the alias is skipped (never written into someone's app) and a warning is logged.
"""

from __future__ import annotations

import logging

from django.contrib.auth.hashers import make_password

from .runners.builtin import (
    ALIAS_USER_MARKER,
    ALIASES,
    BUILTIN_APP_ID,
    BUILTIN_USER_ID,
    BY_NAME,
    CATALOG,
)

PUBLIC = 50
log = logging.getLogger("collectors.inference")


def _output_info(spec) -> dict:
    pairs = spec.concept_pairs()
    return {"data": {"concepts": [{"id": i, "name": n} for i, n in pairs]}} if pairs else {}


def _publish(app, spec, *, Model, ModelVersion, model_id: str, version_id: str) -> None:
    output_info = _output_info(spec)
    model, _ = Model.objects.update_or_create(
        app=app,
        public_id=model_id,
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
        public_id=version_id,
        defaults={
            "description": spec.title,
            "output_info": output_info,
            "runner": spec.runner,
            "runner_config": {},
        },
    )


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
        _publish(
            app,
            spec,
            Model=Model,
            ModelVersion=ModelVersion,
            model_id=spec.model_id,
            version_id=spec.version_id,
        )
    seed_aliases(User, App, Model, ModelVersion)


def seed_aliases(User, App, Model, ModelVersion) -> None:
    """The public alias models (see runners.builtin.ALIASES), each in a system user's public app."""
    for alias in ALIASES:
        user = User.objects.filter(username=alias.user_id).first()
        if user is None:
            user = User.objects.create(
                username=alias.user_id,
                password=make_password(None),
                plan="enterprise",
                first_name=ALIAS_USER_MARKER[:150],
            )
        elif user.first_name != ALIAS_USER_MARKER[:150]:
            log.warning(
                "not publishing %s/%s/models/%s: user '%s' is an existing account",
                alias.user_id,
                alias.app_id,
                alias.model_id,
                alias.user_id,
            )
            continue
        app, _ = App.objects.get_or_create(
            owner=user,
            public_id=alias.app_id,
            defaults={
                "description": "Public model names of Clarifai's platform, run offline here",
                "visibility": PUBLIC,
            },
        )
        if app.visibility != PUBLIC:
            App.objects.filter(pk=app.pk).update(visibility=PUBLIC)
        _publish(
            app,
            BY_NAME[alias.builtin],
            Model=Model,
            ModelVersion=ModelVersion,
            model_id=alias.model_id,
            version_id=alias.version_id,
        )


def ensure_builtin_models(**_kwargs) -> None:
    """post_migrate receiver (and a helper for the quick start): make sure builtin/main is seeded."""
    # Also run from data migrations and post_migrate: models resolved at call time.
    from django.contrib.auth import get_user_model

    from collectors_module.applications.models import App

    from .models import Model, ModelVersion

    seed_builtin_models(get_user_model(), App, Model, ModelVersion)
