"""The draft of the workflow being edited, kept in the session until "Save".

The session key is `wf-draft:<app pk>:<workflow id>`; a draft holds the node dicts the editor
shows and whether the workflow is new. Without a draft the editor shows the stored workflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.http import Http404

from collectors_module.core.errors import ApiError
from collectors_module.core.ids import is_valid_id

from .. import executor, selectors


def draft_key(app, workflow_id: str) -> str:
    return f"wf-draft:{app.pk}:{workflow_id}"


@dataclass
class Editor:
    app: object
    workflow_id: str
    saved: object | None  # the stored Workflow, None for a new one
    nodes: list[dict]
    dirty: bool  # the draft differs from what is stored
    node_errors: dict[str, str] = field(default_factory=dict)
    error: str = ""


def summary(params: dict, concepts: list) -> str:
    """One line of a node's parameters and concepts for the node list."""
    parts = [
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in sorted(params.items())
        if v not in ("", None, [], {})
    ]
    if concepts:
        parts.append(
            "concepts: "
            + ", ".join(
                f"{c.get('id', '')}" + (f" {c['value']:g}" if "value" in c else "")
                for c in concepts[:6]
            )
        )
    text = "; ".join(parts)
    return text if len(text) <= 160 else text[:157] + "..."


def nodes_of(workflow) -> list[dict]:
    """The stored workflow's nodes in the draft's shape."""
    nodes = []
    for n in workflow.nodes.all():
        mv = n.model_version
        model = mv.model
        type_id = (
            executor.operator_type_of(mv)
            if executor.is_operator_version(mv)
            else model.model_type_id
        )
        if executor.is_operator_version(mv):
            params, concepts = executor.effective_config(mv, n.output_info_override)
        else:  # a model: only what the node sets (not the model's whole concept list)
            override = n.output_info_override or {}
            params = override.get("params") or {}
            concepts = (override.get("data") or {}).get("concepts") or []
        nodes.append(
            {
                "id": n.node_id,
                "kind": "version",
                "type": type_id,
                "label": model.public_id,
                "ref": {
                    "id": model.public_id,
                    "user_id": model.app.owner.username,
                    "app_id": model.app.public_id,
                    "version_id": mv.public_id,
                },
                "override": n.output_info_override or {},
                "output_info": {},
                "inputs": list(n.node_inputs or []),
                "summary": summary(params, concepts),
            }
        )
    return nodes


def saved_workflow(app, workflow_id: str):
    try:
        return selectors.workflow_for_app(app, workflow_id)
    except ApiError:
        return None


def load_editor(request, app, workflow_id: str) -> Editor:
    if not is_valid_id(workflow_id):
        raise Http404("Workflow does not exist")
    saved = saved_workflow(app, workflow_id)
    draft = request.session.get(draft_key(app, workflow_id))
    if draft is not None and (saved is None) == bool(draft.get("new")):
        return Editor(app, workflow_id, saved, list(draft.get("nodes", [])), dirty=True)
    if saved is None:
        raise Http404("Workflow does not exist")
    return Editor(app, workflow_id, saved, nodes_of(saved), dirty=False)


def start_draft(request, app, workflow_id: str) -> None:
    """An empty draft of a new workflow."""
    request.session[draft_key(app, workflow_id)] = {"new": True, "nodes": []}


def store_draft(request, ed: Editor) -> None:
    request.session[draft_key(ed.app, ed.workflow_id)] = {
        "new": ed.saved is None,
        "nodes": ed.nodes,
    }
    ed.dirty = True


def drop_draft(request, app, workflow_id: str) -> None:
    request.session.pop(draft_key(app, workflow_id), None)
