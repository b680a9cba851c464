"""What a new node can be: a new operator, one of this app's models, or a builtin/main model.

A choice key is `op:<model type>`, `app:<model id>` or `builtin:<model id>`; its form is generated
from the model type's fields (operators: all of them; models: only the output_info params).
"""

from __future__ import annotations

from dataclasses import dataclass

from collectors_module.core.errors import ApiError
from collectors_module.core.ids import is_valid_id
from collectors_module.inference.runners.builtin import BUILTIN_USER_ID
from collectors_module.inference.selectors import (
    builtin_model_version,
    model_version_for_user,
    models_of_app,
    models_of_user,
)

from .. import executor
from ..forms import NodeForm
from ..model_types import MODEL_TYPES, get_model_type
from ..operators import registry
from .draft import Editor


@dataclass
class Choice:
    key: str  # "op:<type>", "app:<model id>", "builtin:<model id>"
    label: str
    type_id: str
    operator: bool  # a new operator model is made at save time
    version: object | None = None  # the ModelVersion of an existing model

    @property
    def spec(self):
        return get_model_type(self.type_id)

    @property
    def fields(self):
        spec = self.spec
        if spec is None:
            return ()
        if self.operator or spec.operator:
            return spec.fields
        return tuple(f for f in spec.fields if f.is_param)


def builtin_models(user):
    return [m for m in models_of_user(BUILTIN_USER_ID, user) if m.app.public_id == "main"]


def choice_groups(app, user) -> list[tuple[str, list[tuple[str, str]]]]:
    ops = [(f"op:{s.id}", f"{s.title} (new {s.id} operator)") for s in MODEL_TYPES if s.operator]
    own = [
        (f"app:{m.public_id}", f"{m.public_id} ({m.model_type_id})")
        for m in models_of_app(app, user)
    ]
    builtin = [
        (f"builtin:{m.public_id}", f"{m.name or m.public_id} ({m.model_type_id})")
        for m in builtin_models(user)
    ]
    groups = [("Operators", ops)]
    if own:
        groups.append(("This app's models", own))
    groups.append(("Built-in models (builtin/main)", builtin))
    return groups


def resolve_choice(app, user, key: str) -> Choice | None:
    kind, _, ident = (key or "").partition(":")
    if not ident or len(ident) > 128:
        return None
    if kind == "op":
        spec = get_model_type(ident)
        if spec is None or not spec.operator:
            return None
        return Choice(key, spec.title, spec.id, operator=True)
    if not is_valid_id(ident):
        return None
    if kind == "app":
        model = models_of_app(app, user).filter(public_id=ident).first()
        version = model.latest_version() if model is not None else None
        if version is None:
            return None
        version.model = model
        type_id = (
            executor.operator_type_of(version)
            if executor.is_operator_version(version)
            else model.model_type_id
        )
        return Choice(key, model.public_id, type_id, operator=False, version=version)
    if kind == "builtin":
        try:
            version = builtin_model_version(user, model_id=ident)
        except ApiError:
            return None
        model = version.model
        return Choice(key, model.public_id, model.model_type_id, operator=False, version=version)
    return None


def suggest_node_id(choice: Choice, taken: set[str]) -> str:
    base = {
        "random-sample": "sample",
        "metadata-filter": "metadata",
        "concept-thresholder": "threshold",
        "max-probability-below": "uncertain",
        "max-probability-above": "confident",
        "least-confidence": "unsure",
        "margin-below": "margin",
        "entropy-above": "entropy",
        "class-quota": "quota",
        "image-to-text": "text",
    }.get(choice.type_id) or (choice.type_id if choice.operator else choice.label)
    base = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in base)[:100] or "node"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def new_node_form(ed: Editor, choice: Choice, data=None) -> NodeForm:
    taken = {n["id"] for n in ed.nodes}
    base_info = None
    if choice.version is not None:
        params, concepts = executor.effective_config(choice.version, None)
        base_info = {"params": params, "data": {"concepts": concepts}}
    initial = {"node_id": suggest_node_id(choice, taken)}
    if ed.nodes and data is None:
        initial["inputs"] = [ed.nodes[-1]["id"]]  # most workflows are a chain
    return NodeForm(
        data,
        initial=initial,
        spec=choice.spec,
        fields=choice.fields,
        earlier=[n["id"] for n in ed.nodes],
        taken=taken,
        base_info=base_info,
        auto_id="nf-%s",
    )


def check_operator(form: NodeForm, choice: Choice) -> None:
    """Compile the operator with the entered parameters; errors go next to the field."""
    if not (choice.spec and choice.spec.operator) or form.errors:
        return
    info = form.cleaned_data["output_info"]
    params = dict(info.get("params") or {})
    concepts = (info.get("data") or {}).get("concepts")
    if choice.version is not None:
        base_params, base_concepts = executor.effective_config(choice.version, info)
        params, concepts = base_params, base_concepts
    try:
        registry.compile_operator(choice.type_id, params, concepts or [], ())
    except ApiError as exc:
        name = form.field_name_for_path(exc.field or "")
        form.add_error(name, exc.details)


def node_choice(ed: Editor, user, node: dict) -> Choice | None:
    """What an existing draft node is (its type and, for a model node, its version)."""
    if node["kind"] == "operator":
        spec = get_model_type(node["type"])
        if spec is None or not spec.operator:
            return None
        return Choice(f"op:{spec.id}", spec.title, spec.id, operator=True)
    ref = node.get("ref") or {}
    try:
        version = model_version_for_user(
            user,
            owner_user_id=ref.get("user_id", ""),
            app_id=ref.get("app_id", ""),
            model_id=ref.get("id", ""),
            version_id=ref.get("version_id", ""),
        )
    except ApiError:
        return None
    return Choice("", version.model.public_id, node["type"], operator=False, version=version)


def node_info(node: dict, choice: Choice) -> dict:
    """The output_info a node runs with now: an operator node's own, or a model version's
    params and concepts with the node's override on top."""
    if node["kind"] == "operator":
        return node.get("output_info") or {}
    if choice.spec is not None and choice.spec.operator:
        params, concepts = executor.effective_config(choice.version, node.get("override"))
        return {"params": params, "data": {"concepts": concepts}}
    return node.get("override") or {}


def edit_node_form(ed: Editor, node: dict, choice: Choice, data=None) -> NodeForm:
    ids = [n["id"] for n in ed.nodes]
    position = ids.index(node["id"])
    return NodeForm(
        data,
        initial={"node_id": node["id"], "inputs": list(node.get("inputs") or [])},
        spec=choice.spec,
        fields=choice.fields,
        earlier=ids[:position],
        taken=set(ids) - {node["id"]},
        base_info=node_info(node, choice),
        auto_id=f"edit-{node['id']}-%s",
    )
