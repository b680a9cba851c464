"""The Collectors module in an app: the catalogue entry, an installation, a source model."""

from __future__ import annotations

import pytest

VERSION_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def collector_module(db):
    """The seeded catalogue entry (re-seeded with the migration's own data if a transactional
    test without serialized rollback flushed it)."""
    import importlib

    from collectors_module.modules.models import Module

    seed = importlib.import_module(
        "collectors_module.modules.migrations.0002_seed_collector_module"
    )
    module = Module.objects.filter(slug="collector").first()
    if module is None:
        module = Module.objects.create(
            slug="collector",
            title="Collectors",
            description=seed.DESCRIPTION,
            required_scopes=seed.COLLECTOR_SCOPES,
        )
    return module


@pytest.fixture
def install(collector_module):
    """install(tenant, slug="collector", authorize=True) -> Installation (through the services)."""
    from collectors_module.modules.services import installation_authorize, installation_create

    def make(tenant, slug: str = "collector", *, authorize: bool = True, app=None):
        inst = installation_create(
            module=collector_module,
            app=app or tenant.app,
            user=tenant.user,
            slug=slug,
            visibility=10,
        )
        if authorize:
            installation_authorize(installation=inst, user=tenant.user)
        inst.refresh_from_db()
        return inst

    return make


@pytest.fixture
def source_model(alice):
    """A model (with one version) in alice's own app, used as a collector's source."""
    from collectors_module.inference.models import Model, ModelVersion

    model = Model.objects.create(
        app=alice.app, public_id="colors", name="My colour model", model_type_id="visual-classifier"
    )
    version = ModelVersion.objects.create(
        model=model, public_id=VERSION_ID, runner="builtin:color-recognition"
    )
    return version


@pytest.fixture
def workflows(alice):
    from collectors_module.workflows.models import Workflow

    return [
        Workflow.objects.create(app=alice.app, public_id="random-sample"),
        Workflow.objects.create(app=alice.app, public_id="image-to-text"),
    ]


def form_data(tenant, **overrides) -> dict:
    data = {
        "id": "c1",
        "description": "capture colours",
        "pre_queue_workflow_id": "",
        "pre_queue_random_sample": "1",
        "post_queue_workflow_id": "",
        "post_inputs_key_id": tenant.key.public_id,
        "active": "on",
        "caller_user_id": tenant.user.username,
        "source_url": f"/users/{tenant.user.username}/apps/{tenant.app.public_id}/models/colors",
        "model_version_id": VERSION_ID,
        "max_per_minute": "0",
        "max_per_hour": "0",
        "max_per_day": "0",
        "max_pending": "0",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}
