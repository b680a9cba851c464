"""Forms of the Workflow Builder and the knowledge-graph page.

The node form is generated from the model type's fields (`model_types.MODEL_TYPES`): a number
input with min/max/step for NUMBER and RANGE, a select for ENUM, a textarea for JSON and concept
lists, a checkbox for BOOLEAN, a text input otherwise; each field's description is its help
text. Values are parsed with `model_types.parse_form_value`, so the form accepts exactly what
the API accepts.
"""

from __future__ import annotations

import json

from django import forms

from collectors_module.core.errors import ApiError
from collectors_module.core.ids import is_valid_id

from .model_types import (
    CONCEPTS,
    FieldSpec,
    ModelTypeSpec,
    form_value,
    get_model_type,
    parse_form_value,
)
from .models import Predicate
from .recipes import RECIPES, get_recipe

FIELD_PREFIX = "p_"
MAX_TRY_TEXT = 10_000


def _recipe_choices() -> list[tuple[str, str]]:
    choices = [("", "From scratch (an empty workflow)")]
    choices += [(r.id, f"{r.title} ({r.stage})") for r in RECIPES]
    return choices


class WorkflowCreateForm(forms.Form):
    workflow_id = forms.CharField(
        label="Workflow ID",
        max_length=128,
        help_text="Letters, digits, '-', '_' or '.', unique in this app.",
    )
    recipe = forms.ChoiceField(
        label="Start from",
        required=False,
        choices=_recipe_choices,
        help_text="A template makes its operator models and the workflow at once.",
    )

    key_value = forms.CharField(
        label="Key parameter",
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
    )

    def clean_workflow_id(self) -> str:
        value = self.cleaned_data["workflow_id"].strip()
        if not is_valid_id(value):
            raise forms.ValidationError("Use letters, digits, '-', '_' or '.' (at most 128).")
        return value

    def key_field(self, recipe_id: str | None = None) -> FieldSpec | None:
        """The model-type field of the chosen template's key parameter (None: no template)."""
        recipe = get_recipe(recipe_id if recipe_id is not None else self._recipe_id())
        node = recipe.key_node if recipe else None
        spec = get_model_type(node.model_type_id) if node else None
        return (
            spec.field(recipe.key_param[1] if recipe.key_param[1] != "concepts" else CONCEPTS)
            if spec
            else None
        )

    def _recipe_id(self) -> str:
        return (self.data.get("recipe") if self.is_bound else self.initial.get("recipe")) or ""

    def key_label(self) -> str:
        recipe = get_recipe(self._recipe_id())
        return f"{recipe.key_param[0]}.{recipe.key_param[1]}" if recipe and recipe.key_param else ""

    def key_initial(self) -> str:
        """The text the key parameter's field starts with: the template's default."""
        recipe = get_recipe(self._recipe_id())
        f = self.key_field()
        if recipe is None or f is None:
            return ""
        value = recipe.key_default()
        info = {"data": {"concepts": value}} if f.path == CONCEPTS else {"params": {f.name: value}}
        return form_value(f, info)

    def clean(self):
        data = super().clean()
        f = self.key_field()
        data["key_json"] = None
        if f is not None and (self.data.get("key_value") or "").strip():
            try:
                data["key_json"] = parse_form_value(f, self.data.get("key_value", ""))
            except ApiError as exc:
                self.add_error("key_value", exc.details)
        return data


def _param_field(f: FieldSpec, initial: str) -> forms.Field:
    common = {"label": f.name, "required": False, "help_text": f.description, "initial": initial}
    if f.type in ("NUMBER", "RANGE"):
        attrs = {"inputmode": "decimal"}
        for key in ("min", "max", "step"):
            value = getattr(f, key)
            if value is not None:
                attrs[key] = f"{value:g}"
        if "step" not in attrs:
            attrs["step"] = "any"
        return forms.CharField(widget=forms.NumberInput(attrs=attrs), **common)
    if f.type == "ENUM":
        choices = [
            (o.id, f"{o.id} — {o.description}" if o.description else o.id) for o in f.options
        ]
        return forms.ChoiceField(choices=choices, **common)
    if f.type == "BOOLEAN":
        common["initial"] = initial == "true"
        return forms.BooleanField(**common)
    if f.type in ("JSON", "ARRAY_OF_CONCEPTS_WITH_THRESHOLD", "ARRAY_OF_CONCEPTS"):
        placeholder = f.placeholder
        if f.type.startswith("ARRAY_OF_CONCEPTS") and not placeholder:
            placeholder = "one per line: concept-id: 0.5"
        attrs = {"rows": 3, "placeholder": placeholder, "spellcheck": "false"}
        if f.type.startswith("ARRAY_OF_CONCEPTS"):
            common["help_text"] = (
                f.description + " Write one concept per line as 'id: value' (e.g. 'red: 0.5')."
            )
        return forms.CharField(widget=forms.Textarea(attrs=attrs), max_length=20_000, **common)
    attrs = {"placeholder": f.placeholder} if f.placeholder else {}
    return forms.CharField(widget=forms.TextInput(attrs=attrs), max_length=1_000, **common)


class NodeForm(forms.Form):
    """One new node: its id, the nodes it reads, and the fields of its model type."""

    node_id = forms.CharField(
        label="Node ID",
        max_length=128,
        help_text="Unique in this workflow: letters, digits, '-', '_' or '.'.",
    )
    inputs = forms.MultipleChoiceField(
        label="Reads the output of",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: the node reads the workflow input.",
    )

    def __init__(
        self,
        *args,
        spec: ModelTypeSpec | None,
        fields: tuple[FieldSpec, ...],
        earlier: list[str],
        taken: set[str],
        base_info: dict | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.spec_fields = fields
        self.taken = taken
        self.fields["inputs"].choices = [(n, n) for n in earlier]
        for f in fields:
            self.fields[FIELD_PREFIX + f.name] = _param_field(f, form_value(f, base_info))

    def param_fields(self):
        return [self[FIELD_PREFIX + f.name] for f in self.spec_fields]

    def clean_node_id(self) -> str:
        value = self.cleaned_data["node_id"].strip()
        if not is_valid_id(value):
            raise forms.ValidationError("Use letters, digits, '-', '_' or '.' (at most 128).")
        if value in self.taken:
            raise forms.ValidationError(f"Node '{value}' already exists in this workflow.")
        return value

    def clean(self):
        data = super().clean()
        params: dict = {}
        concepts = None
        for f in self.spec_fields:
            name = FIELD_PREFIX + f.name
            raw = self.data.get(name, "")
            if f.type == "BOOLEAN":
                raw = "true" if data.get(name) else "false"
            try:
                value = parse_form_value(f, raw)
            except ApiError as exc:
                self.add_error(name, exc.details)
                continue
            except RecursionError:  # JSON nested thousands of levels deep
                self.add_error(name, f"{f.name}: the JSON is nested too deeply")
                continue
            if value is None:
                continue
            if f.is_param:
                params[f.name] = value
            else:
                concepts = value
        info: dict = {}
        if params:
            info["params"] = params
        if concepts is not None:
            info["data"] = {"concepts": concepts}
        data["output_info"] = info
        return data

    def field_name_for_path(self, path: str) -> str | None:
        for f in self.spec_fields:
            if path in (f.path, f.name) or path.startswith(f.path + "["):
                return FIELD_PREFIX + f.name
        return None


class RelationForm(forms.Form):
    subject = forms.CharField(
        label="Subject concept",
        max_length=256,
        help_text="A concept id, e.g. 'honey' (or a public model's concept, e.g. 'red').",
    )
    predicate = forms.ChoiceField(
        label="Relation",
        choices=[
            (Predicate.SYNONYM, "synonym — the same thing"),
            (Predicate.HYPONYM, "hyponym — the subject is a kind of the object"),
            (Predicate.HYPERNYM, "hypernym — the object is a kind of the subject"),
        ],
    )
    object = forms.CharField(label="Object concept", max_length=256, help_text="A concept id.")
    object_app_id = forms.CharField(
        label="Object concept's app (optional)",
        max_length=128,
        required=False,
        help_text="When the object concept belongs to another app, e.g. 'main' for builtin/main.",
    )
    knowledge_graph_id = forms.CharField(
        label="Knowledge graph ID (optional)",
        max_length=128,
        required=False,
        help_text="Group relations so a mapper can follow only this graph.",
    )

    FIELD_OF = {
        "subject_concept.id": "subject",
        "object_concept.id": "object",
        "predicate": "predicate",
        "knowledge_graph_id": "knowledge_graph_id",
        "object_concept.app_id": "object_app_id",
    }


class TryForm(forms.Form):
    image = forms.FileField(
        label="Image",
        required=False,
        help_text="A PNG, JPEG, GIF or WebP file.",
        widget=forms.FileInput(attrs={"accept": "image/*"}),
    )
    text = forms.CharField(
        label="Or text",
        required=False,
        max_length=MAX_TRY_TEXT,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Used when no image is chosen.",
    )

    metadata = forms.CharField(
        label="Metadata (optional JSON object)",
        required=False,
        max_length=MAX_TRY_TEXT,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text='The input\'s metadata, for metadata filters, e.g. {"source": "mobile"}.',
    )

    def clean_metadata(self) -> dict:

        raw = (self.cleaned_data.get("metadata") or "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            raise forms.ValidationError("Not valid JSON.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('Write a JSON object, e.g. {"source": "mobile"}.')
        return value

    def clean(self):
        data = super().clean()
        if not data.get("image") and not (data.get("text") or "").strip():
            raise forms.ValidationError("Choose an image or type some text.")
        return data
