"""The Collectors module's create/update form and its helpers (source URL, key picker marks)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from clarifai_grpc.grpc.api import resources_pb2
from django import forms
from django.urls import NoReverseMatch, reverse

from collectors_module.api.descriptors import get_rpc
from collectors_module.core.errors import SC, ApiError
from collectors_module.core.fingerprints import MAX_DISTANCE
from collectors_module.core.ids import is_valid_id

from .services import post_inputs_scopes

COLLECTOR_ACTIVE = 52001
COLLECTOR_INACTIVE = 52002
MAX_SOURCE_URL = 2048
EXAMPLE_SOURCE = "/users/clarifai/apps/main/models/general-image-recognition"  # the page's

_SEG = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
# /users/{user}/apps/{app}/models/{model}[/versions/{version}] (optionally under /v2), or the
# portal form /{user}/{app}/models/{model}[/versions/{version}].
_SOURCE_RES = (
    re.compile(
        rf"^/(?:v2/)?users/(?P<user>{_SEG})/apps/(?P<app>{_SEG})/models/(?P<model>{_SEG})"
        rf"(?:/versions/(?P<version>{_SEG}))?/?\Z"
    ),
    re.compile(
        rf"^/(?P<user>{_SEG})/(?P<app>{_SEG})/models/(?P<model>{_SEG})(?:/versions/(?P<version>{_SEG}))?/?\Z"
    ),
)

# Service error field -> form field (the source's four ids are typed as one URL).
FIELD_MAP = {
    "model_user_id": "source_url",
    "model_app_id": "source_url",
    "model_id": "source_url",
    "source": "source_url",
    "collector_source": "source_url",
    "status": "active",
    "caller": "caller_user_id",
    "post_inputs_key": "post_inputs_key_id",
    "pre_queue_workflow": "pre_queue_workflow_id",
    "post_queue_workflow": "post_queue_workflow_id",
}


@dataclass(frozen=True)
class SourceRef:
    user_id: str
    app_id: str
    model_id: str
    version_id: str = ""


def parse_source_url(url: str) -> SourceRef:
    """Split a model URL (path or full URL) into its ids; never opens it. ApiError(field='source_url')."""
    url = (url or "").strip()
    if not url:
        raise ApiError(SC.CONN_INVALID_REQUEST, "Enter the source model's URL", field="source_url")
    if len(url) > MAX_SOURCE_URL or any(ch in url for ch in "\x00\r\n\t "):
        raise ApiError(SC.CONN_INVALID_REQUEST, "That is not a model URL", field="source_url")
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("", "http", "https") or parts.query or parts.fragment:
        raise ApiError(SC.CONN_INVALID_REQUEST, "That is not a model URL", field="source_url")
    path = parts.path if parts.scheme else url
    if not path.startswith("/"):
        path = "/" + path
    for pattern in _SOURCE_RES:
        match = pattern.match(path)  # anchored: ^ ... \Z
        if match:
            return SourceRef(match["user"], match["app"], match["model"], match["version"] or "")
    raise ApiError(
        SC.CONN_INVALID_REQUEST,
        f"A model URL looks like {EXAMPLE_SOURCE} (optionally with /versions/<version id>, or a full URL)",
        field="source_url",
    )


def source_url_of(collector) -> str:
    return f"/users/{collector.model_user_id}/apps/{collector.model_app_id}/models/{collector.model_id}"


def read_model_scopes() -> tuple[str, ...]:
    return get_rpc("GetModel").scopes


@dataclass
class KeyChoice:
    key: object
    can_post: bool
    can_read: bool | None  # None: no source chosen yet, so it cannot be told
    problems: list[str]

    @property
    def label(self) -> str:
        key = self.key
        kind = "PAT" if key.app_id is None else f"app key of {key.app.public_id}"
        post = "posts inputs ✓" if self.can_post else "posts inputs ✗"
        if self.can_read is None:
            read = "reads source: choose a source first"
        else:
            read = "reads source ✓" if self.can_read else "reads source ✗"
        return f"{key.display_name[:90]}, {kind} — {post} · {read}"


def key_choices(keys, *, app, source_model=None) -> list[KeyChoice]:
    """Mark each usable key: can it post inputs to `app`, and read `source_model` (if known)?"""

    post_scopes = post_inputs_scopes()
    read_scopes = read_model_scopes()
    out = []
    for key in keys:
        if not key.is_usable:
            continue
        problems = []
        bound_ok = key.app_id is None or key.app_id == app.pk
        missing_post = key.missing_scopes(post_scopes)
        can_post = bound_ok and not missing_post
        if missing_post:
            problems.append("missing " + ", ".join(missing_post))
        if not bound_ok:
            problems.append(f"bound to app {key.app.public_id}")
        if key.app_id is None:
            read_bound_ok = True
        elif source_model is None:
            read_bound_ok = False
        else:
            read_bound_ok = source_model.app_id == key.app_id or source_model.is_public
        can_read = read_bound_ok and not key.missing_scopes(read_scopes)
        if source_model is None:
            can_read = None  # nothing to read yet: say so instead of a tick
        out.append(KeyChoice(key=key, can_post=can_post, can_read=can_read, problems=problems))
    return out


def workflow_builder_url(app) -> str:
    """The Workflow Builder for `app`, or '' while that page does not exist."""
    try:
        return reverse("workflows:builder", args=[app.public_id])
    except NoReverseMatch:
        return ""


class CollectorForm(forms.Form):
    id = forms.CharField(
        label="Collector ID",
        max_length=128,
        help_text="A useful, descriptive name: letters, digits, '-', '_' or '.'.",
    )
    description = forms.CharField(
        label="Description",
        required=False,
        max_length=512,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    pre_queue_workflow_id = forms.ChoiceField(
        label="Pre-queue Workflow",
        required=False,
        help_text="Runs inline on the model's output to sample or filter what gets queued.",
    )
    pre_queue_random_sample = forms.FloatField(
        label="Random sample fraction",
        required=False,
        min_value=0.0,
        max_value=1.0,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
        help_text="Instead of a pre-queue workflow: keep this share of inputs, (0, 1]. Leave empty for none.",
    )
    post_queue_workflow_id = forms.ChoiceField(
        label="Post-queue Workflow",
        required=False,
        help_text="Runs on the original input after queueing; its outputs are stored with the input. "
        "At least one workflow (or a random sample) is required.",
    )
    post_inputs_key_id = forms.ChoiceField(
        label="Post Inputs Key",
        help_text="The key the collector uses to post inputs to this app; it must also be able to "
        "read the source model.",
    )
    active = forms.BooleanField(
        label="Activate Collector",
        required=False,
        initial=True,
        help_text="Unchecked: the collector is created inactive and captures nothing.",
    )
    caller_user_id = forms.CharField(
        label="Caller",
        required=False,
        max_length=128,
        help_text="The user id whose predictions are collected (your own by default). Blank = any "
        "caller, allowed only for your own models.",
    )
    source_url = forms.CharField(
        label="Source model URL",
        max_length=MAX_SOURCE_URL,
        help_text=f"e.g. {EXAMPLE_SOURCE} or the full URL",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    model_version_id = forms.CharField(
        label="Model version ID",
        required=False,
        max_length=128,
        help_text="Leave empty for the latest version.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    collect_outputs = forms.BooleanField(
        label="Collect outputs",
        required=False,
        help_text="Store the source model's outputs as annotations with the input.",
    )
    dataset_id = forms.ChoiceField(
        label="Destination dataset",
        required=False,
        help_text="Every input the collector ingests is also added to this dataset of the app.",
    )
    max_per_minute = forms.IntegerField(
        label="Max captures per minute", min_value=0, required=False, initial=0
    )
    max_per_hour = forms.IntegerField(
        label="Max captures per hour", min_value=0, required=False, initial=0
    )
    max_per_day = forms.IntegerField(
        label="Max captures per day", min_value=0, required=False, initial=0
    )
    max_pending = forms.IntegerField(
        label="Max pending captures",
        min_value=0,
        required=False,
        initial=0,
        help_text="0 = unlimited (for every limit).",
    )

    near_duplicate = forms.BooleanField(
        label="Skip near-duplicates",
        required=False,
        help_text="The worker drops a capture whose content is already in this app: the same bytes, "
        "the same text (ignoring case and spacing), or an image within the distance below.",
    )
    near_duplicate_max_distance = forms.IntegerField(
        label="Near-duplicate image distance",
        min_value=0,
        max_value=MAX_DISTANCE,
        required=False,
        initial=4,
        help_text=f"Perceptual-hash bits that may differ, 0 to {MAX_DISTANCE} (4: re-encoded or "
        "slightly edited copies).",
    )

    LIMIT_FIELDS = ("max_per_minute", "max_per_hour", "max_per_day", "max_pending")

    def __init__(
        self,
        *args,
        workflows=(),
        key_choices_=(),
        editing: bool = False,
        datasets=(),
        workflow_notes: dict | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.fields["dataset_id"].choices = [("", "— none —")] + [(d, d) for d in datasets]
        notes = workflow_notes or {}
        none = [("", "— none —")]
        self.fields["pre_queue_workflow_id"].choices = none + [
            (w.public_id, _label(w, notes.get(w.public_id, {}).get("pre"))) for w in workflows
        ]
        self.fields["post_queue_workflow_id"].choices = none + [
            (w.public_id, _label(w, notes.get(w.public_id, {}).get("post"))) for w in workflows
        ]
        # Post-queue workflows that can never produce an output (every capture filtered).
        self.post_queue_warnings = [
            (w.public_id, notes[w.public_id]["problem"])
            for w in workflows
            if notes.get(w.public_id, {}).get("problem")
        ]
        self.key_choices = list(key_choices_)
        self.fields["post_inputs_key_id"].choices = [("", "— choose a key —")] + [
            (c.key.public_id, c.label) for c in self.key_choices
        ]
        if editing:
            self.fields["id"].disabled = True
            self.fields["id"].help_text = "The collector ID cannot change."

    def clean_source_url(self):
        value = self.cleaned_data.get("source_url", "")
        try:
            self.source_ref = parse_source_url(value)
        except ApiError as exc:
            raise forms.ValidationError(exc.details) from exc
        return value.strip()

    def clean_model_version_id(self):
        value = (self.cleaned_data.get("model_version_id") or "").strip()
        if value and not is_valid_id(value):
            raise forms.ValidationError(
                "That is not a model version ID (letters, digits, '-', '_' or '.')."
            )
        return value

    def model_version(self) -> str:
        version = (self.cleaned_data.get("model_version_id") or "").strip()
        ref = getattr(self, "source_ref", None)
        if not version and ref is not None:
            version = ref.version_id
        return version

    def add_api_error(self, exc: ApiError) -> None:
        """Attach a service error to the field it names (or to the form)."""
        field = FIELD_MAP.get(exc.field, exc.field)
        message = exc.details or exc.description
        if field in self.fields:
            self.add_error(field, message)
        else:
            self.add_error(None, message)

    def to_pb(self):
        """The Clarifai Collector message this form describes (cleaned data required)."""

        data = self.cleaned_data
        ref = self.source_ref
        collector = resources_pb2.Collector(
            id=data["id"].strip(),
            description=data.get("description") or "",
            pre_queue_workflow_id=data.get("pre_queue_workflow_id") or "",
            post_queue_workflow_id=data.get("post_queue_workflow_id") or "",
            pre_queue_random_sample=data.get("pre_queue_random_sample") or 0.0,
            collect_outputs=bool(data.get("collect_outputs")),
        )
        src = collector.collector_source.api_post_model_outputs_collector_source
        src.model_user_id = ref.user_id
        src.model_app_id = ref.app_id
        src.model_id = ref.model_id
        src.model_version_id = self.model_version()
        src.post_inputs_key_id = data.get("post_inputs_key_id") or ""
        src.caller_user_id = (data.get("caller_user_id") or "").strip()
        collector.status.code = COLLECTOR_ACTIVE if data.get("active") else COLLECTOR_INACTIVE
        return collector

    def near_duplicate_settings(self) -> dict:
        distance = self.cleaned_data.get("near_duplicate_max_distance")
        return {
            "enabled": bool(self.cleaned_data.get("near_duplicate")),
            "max_distance": 4 if distance is None else int(distance),
        }

    def limits(self) -> dict[str, int]:
        return {name: int(self.cleaned_data.get(name) or 0) for name in self.LIMIT_FIELDS}

    def finalize_a11y(self) -> None:
        """Point each input at its help text and error message (aria-describedby, aria-invalid)."""
        for name, field in self.fields.items():
            bound = self[name]
            ids = []
            if field.help_text:
                ids.append(f"{bound.auto_id}_helptext")
            if self.is_bound and bound.errors:
                ids.append(f"{bound.auto_id}_error")
                field.widget.attrs["aria-invalid"] = "true"
            if ids:
                field.widget.attrs["aria-describedby"] = " ".join(ids)


def _label(workflow, note: str | None) -> str:
    return f"{workflow.public_id} — {note}" if note else workflow.public_id


PRE_QUEUE_NOTES = {
    "inline": "inline (operators only)",
    "inline-with-source": "inline if its model is the source, else worker",
    "worker": "worker (runs models)",
}


def workflow_notes(workflows, describe_pre, describe_post) -> dict[str, dict]:
    """How each workflow runs in each stage, for the dropdowns: `describe_pre(w)` gives a
    PRE_QUEUE_NOTES key, `describe_post(w)` why it can never output ("" when it can)."""
    out: dict[str, dict] = {}
    for w in workflows:
        try:
            pre, problem = PRE_QUEUE_NOTES.get(describe_pre(w), ""), describe_post(w)
        except ApiError:
            pre, problem = "", ""
        post = "worker; can never output: every capture filtered" if problem else "worker"
        out[w.public_id] = {"pre": pre, "post": post, "problem": problem}
    return out


def initial_from_collector(collector) -> dict:
    """Form values of an existing collector (the update page)."""
    return {
        "id": collector.public_id,
        "description": collector.description,
        "pre_queue_workflow_id": collector.pre_queue_workflow.public_id
        if collector.pre_queue_workflow
        else "",
        "post_queue_workflow_id": collector.post_queue_workflow.public_id
        if collector.post_queue_workflow
        else "",
        "pre_queue_random_sample": collector.pre_queue_random_sample or None,
        "post_inputs_key_id": collector.post_inputs_key.public_id
        if collector.post_inputs_key
        else "",
        "active": collector.is_active,
        "caller_user_id": collector.caller.username if collector.caller else "",
        "source_url": source_url_of(collector),
        "model_version_id": collector.model_version_id,
        "collect_outputs": collector.collect_outputs,
        "max_per_minute": collector.max_per_minute,
        "max_per_hour": collector.max_per_hour,
        "max_per_day": collector.max_per_day,
        "max_pending": collector.max_pending,
        "near_duplicate": collector.near_duplicate,
        "near_duplicate_max_distance": collector.near_duplicate_max_distance,
    }
