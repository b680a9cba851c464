"""`manage.py seed_demo`: the quick start's demo workspace (safe to run again).

Creates user `demo` (Professional), app `demo-app`, a PAT with scope `All`, the Collectors module
installed in the app, the Workflow Builder's image-to-text workflow (captions), and a collector
capturing demo's predictions on `general-image-recognition` (the product page's source model,
`clarifai/main`, version aa7f35c01e0642fda5cf400f543e7c40) with random sample 1.0, that
workflow after the queue and the source outputs collected. It also writes a ready request body
(`demo_predict.json`: a small photo of an espresso) for the quick start's curl command.
Passwords and key secrets are stored only as hashes in the database, so this local demo keeps the
generated password and secret in `var/` (mode 0600) to print them again on the next run.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from clarifai_grpc.grpc.api import resources_pb2
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from collectors_module.accounts import services
from collectors_module.accounts.models import Key, Plan, User
from collectors_module.applications.models import App
from collectors_module.applications.services import app_create
from collectors_module.collectors.models import Collector
from collectors_module.collectors.services import (
    collector_create,
    collector_overwrite,
    collector_set_status,
)
from collectors_module.core.auth import digest_secret
from collectors_module.core.errors import ApiError
from collectors_module.inference.models import Model
from collectors_module.inference.runners.builtin import GENERAL_IMAGE_RECOGNITION_VERSION
from collectors_module.modules.models import Installation, Module
from collectors_module.modules.services import (
    installation_authorize,
    installation_create,
)
from collectors_module.workflows.models import Workflow
from collectors_module.workflows.services import workflow_create_from_recipe

DEMO_USER = "demo"
DEMO_APP = "demo-app"
DEMO_COLLECTOR = "demo-collector"
DEMO_KEY_DESCRIPTION = "demo key (quick start)"
DEMO_WORKFLOW = "image-to-text"
# The product page's source model; builtin/main has the same model and version id, used when a
# real account holds the user id `clarifai` (then the alias is not published).
SOURCES = (
    {"model_user_id": "clarifai", "model_app_id": "main", "model_id": "general-image-recognition"},
    {"model_user_id": "builtin", "model_app_id": "main", "model_id": "general-image-recognition"},
)
DEMO_PHOTO = Path(__file__).resolve().parents[2] / "demo" / "coffee.jpg"  # CC0, see its README


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _write_private(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")


class Command(BaseCommand):
    help = "Create (or refresh) the demo workspace of the quick start and print how to log in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--state-dir",
            default=str(Path(settings.VAR_DIR)),
            help="where the demo password and key secret are kept (default: var/)",
        )
        parser.add_argument(
            "--reset-password", action="store_true", help="generate a new password for demo"
        )

    def handle(self, *args, **options) -> None:
        state = Path(options["state_dir"])
        user, password = self._user(state / "demo_password", options["reset_password"])
        app = App.objects.filter(owner=user, public_id=DEMO_APP).first()
        if app is None:
            app = app_create(
                owner=user, app_id=DEMO_APP, description="Demo app: captured predictions land here"
            )
        key, secret = self._key(user, state / "demo_key")
        self._module(user, app)
        source = _source()
        collector_note = self._collector(user, app, key, source)
        request = _write_request(state / "demo_predict.json")

        out = self.stdout.write
        out(f"user:      {user.username}")
        out(f"password:  {password}")
        out(f"app:       {app.public_id}")
        out(f"key id:    {key.public_id}")
        out(f"key:       {secret}")
        out(f"collector: {collector_note}")
        out(
            f"predict:   /v2/users/{source['model_user_id']}/apps/{source['model_app_id']}"
            f"/models/{source['model_id']}/versions/{GENERAL_IMAGE_RECOGNITION_VERSION}/outputs"
        )
        out(f"request:   {request}")

    # -- parts -----------------------------------------------------------------------------

    def _user(self, password_file: Path, reset: bool) -> tuple[User, str]:
        user = User.objects.filter(username=DEMO_USER).first()
        password = _read(password_file)
        if user is None:
            user, password = services.user_create(
                user_id=DEMO_USER, plan=Plan.PROFESSIONAL, password=password or None
            )
            _write_private(password_file, password)
            return user, password
        if user.plan == Plan.COMMUNITY:
            User.objects.filter(pk=user.pk).update(plan=Plan.PROFESSIONAL)
            user.plan = Plan.PROFESSIONAL
        if reset or not password or not user.check_password(password):
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save(update_fields=["password"])
            _write_private(password_file, password)
        return user, password

    def _key(self, user: User, key_file: Path) -> tuple[Key, str]:
        secret = _read(key_file)
        if secret:
            key = Key.objects.filter(owner=user, digest=digest_secret(secret)).first()
            if key is not None and key.is_usable:
                return key, secret
        created = services.key_create(owner=user, scopes=["All"], description=DEMO_KEY_DESCRIPTION)
        _write_private(key_file, created.secret)
        return created.key, created.secret

    def _module(self, user: User, app: App) -> None:
        """Install the Collectors module in the demo app, so it shows in the sidebar."""
        module = Module.objects.filter(slug="collector").first()
        if module is None:
            return
        inst = Installation.objects.filter(app=app, module=module).first()
        try:
            if inst is None:
                inst = installation_create(module=module, app=app, user=user, slug="collector")
            if inst.key is None or not inst.key.is_usable:
                installation_authorize(installation=inst, user=user)
        except ApiError as exc:
            self.stderr.write(
                f"note: Collectors module not installed in {app.public_id}: {exc.details}"
            )

    def _workflow(self, app: App) -> str:
        """The Workflow Builder's image-to-text template (captions), made once in the app."""

        if not Workflow.objects.filter(app=app, public_id=DEMO_WORKFLOW).exists():
            workflow_create_from_recipe(
                app=app,
                recipe_id="image-to-text",
                workflow_id=DEMO_WORKFLOW,
                description="Captions each captured image (the demo collector's post-queue step)",
            )
        return DEMO_WORKFLOW

    def _collector(self, user: User, app: App, key: Key, source: dict) -> str:

        workflow_id = self._workflow(app)
        pb = resources_pb2.Collector(
            id=DEMO_COLLECTOR,
            description=(
                "Collects every prediction demo makes with general-image-recognition and "
                "captions it"
            ),
            pre_queue_random_sample=1.0,
            post_queue_workflow_id=workflow_id,
            collect_outputs=True,
        )
        src = pb.collector_source.api_post_model_outputs_collector_source
        src.model_user_id = source["model_user_id"]
        src.model_app_id = source["model_app_id"]
        src.model_id = source["model_id"]
        src.model_version_id = GENERAL_IMAGE_RECOGNITION_VERSION
        src.caller_user_id = user.username
        src.post_inputs_key_id = key.public_id
        where = f"{source['model_user_id']}/{source['model_app_id']}/{source['model_id']}"
        existing = Collector.objects.filter(app=app, public_id=DEMO_COLLECTOR).first()
        try:
            if existing is None:
                collector_create(app=app, actor=user, collector_pb=pb)
                return (
                    f"{DEMO_COLLECTOR} (created; random sample 1.0 on {where}, "
                    f"post-queue workflow {workflow_id})"
                )
            current = (existing.model_user_id, existing.model_app_id, existing.model_id)
            wanted = (source["model_user_id"], source["model_app_id"], source["model_id"])
            if current != wanted or existing.post_queue_workflow_id is None:
                # an older demo (the colour model, no captions): bring it up to date
                collector_overwrite(app=app, actor=user, collector_pb=pb)
                collector_set_status(app=app, collector_id=DEMO_COLLECTOR, active=True)
                return f"{DEMO_COLLECTOR} (exists; updated to {where} with captions; active)"
            collector_set_status(app=app, collector_id=DEMO_COLLECTOR, active=True)
        except ApiError as exc:
            self.stderr.write(f"note: demo collector not ready: {exc.details}")
            return f"not ready ({exc.details})"
        return f"{DEMO_COLLECTOR} (exists; active)"


def _source() -> dict:

    for source in SOURCES:
        if Model.objects.filter(
            app__owner__username=source["model_user_id"],
            app__public_id=source["model_app_id"],
            public_id=source["model_id"],
        ).exists():
            return source
    return SOURCES[-1]


def _write_request(path: Path) -> Path:
    """A PostModelOutputs body with the demo photo, for `curl -d @file`."""
    body = {
        "inputs": [
            {"data": {"image": {"base64": base64.b64encode(DEMO_PHOTO.read_bytes()).decode()}}}
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, path)
    return path.resolve()
