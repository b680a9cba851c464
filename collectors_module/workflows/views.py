"""The Workflow Builder and the knowledge-graph page of an app (owner only; else 404).

Editing works on a draft kept in the session (`wf-draft:<app pk>:<workflow id>`): adding or
removing a node changes the draft; "Save" writes it with `services.workflow_create` /
`workflow_overwrite` (operator nodes first get their operator model, made with the entered
parameters through `inference.services.model_create`), all or nothing. A validation error
(`ApiError.field` = node id) is shown next to that node. "Try it" runs the SAVED workflow with
`executor.run_on_inputs` and shows every node's output. htmx requests get partials; full-page
posts redirect after success (Post/Redirect/Get).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clarifai_grpc.grpc.api import resources_pb2
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from collectors_module.core.errors import SC, ApiError
from collectors_module.core.ids import is_valid_id
from collectors_module.core.protojson import from_dict
from collectors_module.inputs.views import own_app_or_404

from . import conf, executor, selectors, services
from .forms import NodeForm, RelationForm, TryForm, WorkflowCreateForm
from .model_types import MODEL_TYPES, get_model_type
from .recipes import RECIPES

MAX_TRY_IMAGE_BYTES = 10 * 1024 * 1024


def _status(request, status: int) -> int:
    """htmx 2 does not swap 4xx answers by default: a partial with its validation errors is a 200
    to htmx (a full page keeps its 400)."""
    return 200 if request.htmx and status == 400 else status


# --- drafts -----------------------------------------------------------------------------------


def _draft_key(app, workflow_id: str) -> str:
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


def _summary(params: dict, concepts: list) -> str:
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


def _nodes_of(workflow) -> list[dict]:
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
                "summary": _summary(params, concepts),
            }
        )
    return nodes


def _saved(app, workflow_id: str):
    try:
        return selectors.workflow_for_app(app, workflow_id)
    except ApiError:
        return None


def _editor(request, app, workflow_id: str) -> Editor:
    if not is_valid_id(workflow_id):
        raise Http404("Workflow does not exist")
    saved = _saved(app, workflow_id)
    draft = request.session.get(_draft_key(app, workflow_id))
    if draft is not None and (saved is None) == bool(draft.get("new")):
        return Editor(app, workflow_id, saved, list(draft.get("nodes", [])), dirty=True)
    if saved is None:
        raise Http404("Workflow does not exist")
    return Editor(app, workflow_id, saved, _nodes_of(saved), dirty=False)


def _store(request, ed: Editor) -> None:
    request.session[_draft_key(ed.app, ed.workflow_id)] = {
        "new": ed.saved is None,
        "nodes": ed.nodes,
    }
    ed.dirty = True


def _drop_draft(request, app, workflow_id: str) -> None:
    request.session.pop(_draft_key(app, workflow_id), None)


# --- what a node can be -----------------------------------------------------------------------


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


def _builtin_models(user):
    from collectors_module.inference.runners.builtin import BUILTIN_USER_ID
    from collectors_module.inference.selectors import models_of_user

    return [m for m in models_of_user(BUILTIN_USER_ID, user) if m.app.public_id == "main"]


def _choice_groups(app, user) -> list[tuple[str, list[tuple[str, str]]]]:
    from collectors_module.inference.selectors import models_of_app

    ops = [(f"op:{s.id}", f"{s.title} (new {s.id} operator)") for s in MODEL_TYPES if s.operator]
    own = [
        (f"app:{m.public_id}", f"{m.public_id} ({m.model_type_id})")
        for m in models_of_app(app, user)
    ]
    builtin = [
        (f"builtin:{m.public_id}", f"{m.name or m.public_id} ({m.model_type_id})")
        for m in _builtin_models(user)
    ]
    groups = [("Operators", ops)]
    if own:
        groups.append(("This app's models", own))
    groups.append(("Built-in models (builtin/main)", builtin))
    return groups


def _resolve_choice(app, user, key: str) -> Choice | None:
    from collectors_module.inference.selectors import builtin_model_version, models_of_app

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


def _suggest_node_id(choice: Choice, taken: set[str]) -> str:
    base = {
        "random-sample": "sample",
        "metadata-filter": "metadata",
        "concept-thresholder": "threshold",
        "max-probability-below": "uncertain",
        "max-probability-above": "confident",
        "image-to-text": "text",
    }.get(choice.type_id) or (choice.type_id if choice.operator else choice.label)
    base = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in base)[:100] or "node"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _node_form(ed: Editor, choice: Choice, data=None) -> NodeForm:
    taken = {n["id"] for n in ed.nodes}
    base_info = None
    if choice.version is not None:
        params, concepts = executor.effective_config(choice.version, None)
        base_info = {"params": params, "data": {"concepts": concepts}}
    initial = {"node_id": _suggest_node_id(choice, taken)}
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


def _check_operator(form: NodeForm, choice: Choice) -> None:
    """Compile the operator with the entered parameters; errors go next to the field."""
    from .operators import registry

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


# --- the SVG drawing --------------------------------------------------------------------------

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 168, 52, 56, 18, 12


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _depths(nodes: list[dict]) -> dict[str, int]:
    ids = [n["id"] for n in nodes]
    parents = {n["id"]: [p for p in n["inputs"] if p in ids] for n in nodes}
    try:
        order = executor.topological_order(ids, parents)
    except ValueError:
        order = ids
    depth: dict[str, int] = {}
    for nid in order:
        ps = [depth.get(p, 0) for p in parents[nid]]
        depth[nid] = 1 + max(ps) if ps else 0
    return depth


def _graph(ed: Editor) -> dict:
    """Boxes and arrows of the workflow (an 'Input' box, then one column per depth)."""
    nodes = ed.nodes
    if ed.saved is not None and not ed.dirty:
        try:
            depths = executor.node_depths(ed.saved)
        except (ApiError, ValueError):
            depths = _depths(nodes)
    else:
        depths = _depths(nodes)
    columns: dict[int, list[dict]] = {}
    for n in nodes:
        columns.setdefault(depths.get(n["id"], 0) + 1, []).append(n)
    rows = max([len(c) for c in columns.values()] + [1])
    height = PAD * 2 + rows * BOX_H + (rows - 1) * GAP_Y
    pos: dict[str, tuple[int, int]] = {}
    boxes = []
    in_y = PAD + (rows - 1) * (BOX_H + GAP_Y) // 2
    pos["__input__"] = (PAD, in_y)
    boxes.append(
        {"x": PAD, "y": in_y, "title": "Input", "sub": "image or text", "input": True, "id": ""}
    )
    for col, members in sorted(columns.items()):
        x = PAD + col * (BOX_W + GAP_X)
        offset = (rows - len(members)) * (BOX_H + GAP_Y) // 2
        for r, n in enumerate(members):
            y = PAD + offset + r * (BOX_H + GAP_Y)
            pos[n["id"]] = (x, y)
            spec = get_model_type(n["type"])
            boxes.append(
                {
                    "x": x,
                    "y": y,
                    "id": n["id"],
                    "title": _clip(n["id"], 22),
                    "sub": _clip(spec.title if spec else n["type"], 26),
                    "tooltip": f"{n['id']}: {n['label']} ({n['type']})",
                    "error": n["id"] in ed.node_errors,
                    "operator": bool(spec and spec.operator),
                }
            )
    edges = []
    for n in nodes:
        x2, y2 = pos[n["id"]]
        sources = [p for p in n["inputs"] if p in pos] or ["__input__"]
        for p in sources:
            x1, y1 = pos[p]
            sx, sy = x1 + BOX_W, y1 + BOX_H // 2
            tx, ty = x2 - 4, y2 + BOX_H // 2
            mid = (sx + tx) // 2
            edges.append(f"M{sx},{sy} C{mid},{sy} {mid},{ty} {tx},{ty}")
    width = PAD * 2 + (max(columns, default=0) + 1) * BOX_W + max(columns, default=0) * GAP_X
    return {
        "width": width,
        "height": height,
        "boxes": boxes,
        "edges": edges,
        "box_w": BOX_W,
        "box_h": BOX_H,
        "text_x": 10,
    }


# --- rendering --------------------------------------------------------------------------------


def _urls(app, workflow_id: str) -> dict[str, str]:
    args = [app.public_id, workflow_id]
    return {
        "edit": reverse("workflows:edit", args=args),
        "add": reverse("workflows:node_add", args=args),
        "save": reverse("workflows:save", args=args),
        "discard": reverse("workflows:discard", args=args),
        "delete": reverse("workflows:delete", args=args),
        "try": reverse("workflows:try", args=args),
        "builder": reverse("workflows:builder", args=[app.public_id]),
    }


def _editor_context(
    request, ed: Editor, *, choice_key: str = "", choice=None, node_form=None, **extra
) -> dict:
    if node_form is None and choice_key:
        choice = _resolve_choice(ed.app, request.user, choice_key)
        if choice is not None:
            node_form = _node_form(ed, choice)
    view_nodes = []
    for n in ed.nodes:
        spec = get_model_type(n["type"])
        view_nodes.append(
            {
                **n,
                "type_title": spec.title if spec else n["type"],
                "error": ed.node_errors.get(n["id"], ""),
                "readers": [m["id"] for m in ed.nodes if n["id"] in m["inputs"]],
                "remove_url": reverse(
                    "workflows:node_remove", args=[ed.app.public_id, ed.workflow_id, n["id"]]
                ),
            }
        )
    context = {
        "current_app": ed.app,
        "ed": ed,
        "nodes": view_nodes,
        "graph": _graph(ed),
        "urls": _urls(ed.app, ed.workflow_id),
        "choice_groups": _choice_groups(ed.app, request.user),
        "choice": choice,
        "choice_key": choice.key if choice else "",
        "node_form": node_form,
        "try_form": extra.pop("try_form", None) or TryForm(auto_id="try-%s"),
        "description": ed.saved.description if ed.saved is not None else "",
    }
    context.update(extra)
    return context


def _render_editor(request, ed: Editor, status: int = 200, **kw) -> HttpResponse:
    context = _editor_context(request, ed, **kw)
    template = "workflows/_editor.html" if request.htmx else "workflows/edit.html"
    return render(request, template, context, status=_status(request, status))


# --- views: the builder -----------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def builder_view(request: HttpRequest, app_id: str) -> HttpResponse:
    """The app's workflows, and the form that creates one (from a template or from scratch)."""
    app = own_app_or_404(request.user, app_id)
    form = WorkflowCreateForm(request.POST or None, auto_id="new-%s")
    status = 200
    if request.method == "POST":
        if form.is_valid():
            workflow_id = form.cleaned_data["workflow_id"]
            recipe_id = form.cleaned_data["recipe"]
            try:
                if recipe_id:
                    services.workflow_create_from_recipe(
                        app=app, recipe_id=recipe_id, workflow_id=workflow_id
                    )
                    _drop_draft(request, app, workflow_id)
                    messages.success(request, f"Workflow {workflow_id} created from a template.")
                else:
                    if _saved(app, workflow_id) is not None:
                        raise ApiError(
                            SC.WORKFLOW_DUPLICATE,
                            f"A workflow with id '{workflow_id}' already exists",
                            field="id",
                        )
                    request.session[_draft_key(app, workflow_id)] = {"new": True, "nodes": []}
                    messages.info(request, "Add nodes, then save the workflow.")
            except ApiError as exc:
                form.add_error("workflow_id" if exc.field in ("id", "") else None, exc.details)
            else:
                return redirect("workflows:edit", app.public_id, workflow_id)
        status = 400
    workflows = list(selectors.workflows_of_app(app))
    rows = [
        {
            "workflow": w,
            "nodes": [n.node_id for n in w.nodes.all()],
            "edit_url": reverse("workflows:edit", args=[app.public_id, w.public_id]),
        }
        for w in workflows
    ]
    context = {
        "current_app": app,
        "form": form,
        "rows": rows,
        "recipes": RECIPES,
        "kg_url": reverse("workflows:knowledge_graph", args=[app.public_id]),
    }
    return render(request, "workflows/builder.html", context, status=status)


@login_required
@require_GET
def edit_view(request: HttpRequest, app_id: str, workflow_id: str) -> HttpResponse:
    """The editor. `?choice=` shows the generated form of a model or operator to add."""
    app = own_app_or_404(request.user, app_id)
    ed = _editor(request, app, workflow_id)
    choice_key = request.GET.get("choice", "")[:200]
    context = _editor_context(request, ed, choice_key=choice_key)
    if request.htmx and request.htmx.target == "add-node":
        response = render(request, "workflows/_add_node.html", context)
    else:
        response = render(request, "workflows/edit.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@login_required
@require_POST
def node_add_view(request: HttpRequest, app_id: str, workflow_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    ed = _editor(request, app, workflow_id)
    choice = _resolve_choice(app, request.user, request.POST.get("choice", ""))
    if choice is None:
        ed.error = "Choose a model or an operator from the list."
        return _render_editor(request, ed, status=400)
    form = _node_form(ed, choice, data=request.POST)
    limit = conf.max_nodes()
    if len(ed.nodes) >= limit:
        form.add_error(None, f"A workflow may have at most {limit} nodes.")
    if form.is_valid():
        _check_operator(form, choice)
    if not form.is_valid():
        return _render_editor(request, ed, status=400, node_form=form, choice=choice)
    info = form.cleaned_data["output_info"]
    params = info.get("params") or {}
    concepts = (info.get("data") or {}).get("concepts") or []
    node = {
        "id": form.cleaned_data["node_id"],
        "type": choice.type_id,
        "label": choice.label,
        "inputs": list(form.cleaned_data["inputs"]),
        "summary": _summary(params, concepts),
        "override": {},
        "output_info": {},
        "ref": None,
    }
    if choice.operator:
        node["kind"] = "operator"
        node["output_info"] = info
    else:
        model = choice.version.model
        node["kind"] = "version"
        node["ref"] = {
            "id": model.public_id,
            "user_id": model.app.owner.username,
            "app_id": model.app.public_id,
            "version_id": choice.version.public_id,
        }
        node["override"] = info
    ed.nodes.append(node)
    _store(request, ed)
    if request.htmx:
        return _render_editor(request, ed)
    messages.success(request, f"Node {node['id']} added (not saved yet).")
    return redirect("workflows:edit", app.public_id, workflow_id)


@login_required
@require_POST
def node_remove_view(request: HttpRequest, app_id: str, workflow_id: str, node_id: str):
    app = own_app_or_404(request.user, app_id)
    ed = _editor(request, app, workflow_id)
    if node_id not in {n["id"] for n in ed.nodes}:
        raise Http404("Node does not exist")
    readers = [n["id"] for n in ed.nodes if node_id in n["inputs"]]
    if readers:
        ed.node_errors[node_id] = (
            f"Node {', '.join(readers)} reads this node's output: remove "
            f"{'it' if len(readers) == 1 else 'them'} first, or this node cannot go."
        )
        return _render_editor(request, ed, status=400)
    ed.nodes = [n for n in ed.nodes if n["id"] != node_id]
    _store(request, ed)
    if request.htmx:
        return _render_editor(request, ed)
    messages.success(request, f"Node {node_id} removed (not saved yet).")
    return redirect("workflows:edit", app.public_id, workflow_id)


def _unique_model_id(app, user, base: str) -> str:
    from collectors_module.inference.selectors import models_of_app

    base = base[:120]
    model_id, n = base, 1
    while models_of_app(app, user).filter(public_id=model_id).exists():
        n += 1
        model_id = f"{base}-{n}"
    return model_id


def _write(request, ed: Editor) -> None:
    """Make the operator models of new operator nodes and store the workflow, all or none."""
    from collectors_module.inference.services import model_create

    node_ids = {n["id"] for n in ed.nodes}
    with transaction.atomic():
        nodes = []
        for n in ed.nodes:
            ref = n.get("ref")
            if n["kind"] == "operator":
                model_id = _unique_model_id(ed.app, request.user, f"{ed.workflow_id}-{n['id']}")
                try:
                    pb = from_dict(
                        {
                            "id": model_id,
                            "model_type_id": n["type"],
                            "output_info": n["output_info"],
                        },
                        resources_pb2.Model,
                    )
                    model = model_create(app=ed.app, model_pb=pb)
                except ApiError as exc:
                    raise ApiError(
                        exc.code, f"Node '{n['id']}': {exc.details}", field=n["id"]
                    ) from exc
                version = model.latest_version()
                ref = {
                    "id": model.public_id,
                    "user_id": ed.app.owner.username,
                    "app_id": ed.app.public_id,
                    "version_id": version.public_id,
                }
            node = {
                "id": n["id"],
                "model": {
                    "id": ref["id"],
                    "user_id": ref["user_id"],
                    "app_id": ref["app_id"],
                    "model_version": {"id": ref["version_id"]},
                },
            }
            if n["inputs"]:
                node["node_inputs"] = [{"node_id": i} for i in n["inputs"] if i in node_ids]
            if n.get("override"):
                node["output_info_override"] = n["override"]
            nodes.append(node)
        body: dict = {"id": ed.workflow_id, "nodes": nodes}
        if ed.saved is None:
            body["description"] = "Made in the Workflow Builder"
        pb = from_dict(body, resources_pb2.Workflow)
        if ed.saved is None:
            services.workflow_create(app=ed.app, workflow_pb=pb)
        else:
            services.workflow_overwrite(app=ed.app, workflow_pb=pb)


@login_required
@require_POST
def save_view(request: HttpRequest, app_id: str, workflow_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    ed = _editor(request, app, workflow_id)
    try:
        _write(request, ed)
    except ApiError as exc:
        if exc.field in {n["id"] for n in ed.nodes}:
            ed.node_errors[exc.field] = exc.details
            ed.error = f"Not saved: node {exc.field} has a problem (see below)."
        else:
            ed.error = f"Not saved: {exc.details}"
        return _render_editor(request, ed, status=400)
    _drop_draft(request, app, workflow_id)
    messages.success(request, f"Workflow {workflow_id} saved.")
    url = reverse("workflows:edit", args=[app.public_id, workflow_id])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@login_required
@require_POST
def discard_view(request: HttpRequest, app_id: str, workflow_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    ed = _editor(request, app, workflow_id)
    _drop_draft(request, app, workflow_id)
    if ed.saved is None:
        messages.info(request, f"Draft {workflow_id} discarded.")
        return redirect("workflows:builder", app.public_id)
    messages.info(request, "Unsaved changes discarded.")
    return redirect("workflows:edit", app.public_id, workflow_id)


@login_required
@require_POST
def delete_view(request: HttpRequest, app_id: str, workflow_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    ed = _editor(request, app, workflow_id)
    _drop_draft(request, app, workflow_id)
    if ed.saved is not None:
        try:
            services.workflow_delete(app=app, workflow_id=workflow_id)
        except ApiError as exc:
            messages.error(request, exc.details)
            return redirect("workflows:edit", app.public_id, workflow_id)
    messages.success(request, f"Workflow {workflow_id} deleted.")
    url = reverse("workflows:builder", args=[app.public_id])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


# --- try it -----------------------------------------------------------------------------------


def _concepts(concepts) -> list[dict]:
    out = []
    for c in sorted(concepts, key=lambda c: -c.value)[:20]:
        out.append({"name": c.name or c.id, "id": c.id, "value": c.value})
    return out


def _node_result(run) -> dict:
    mv = run.model_version
    type_id = (
        executor.operator_type_of(mv)
        if executor.is_operator_version(mv)
        else mv.model.model_type_id
    )
    spec = get_model_type(type_id)
    data = run.data
    regions = []
    for r in data.regions[:50]:
        box = r.region_info.bounding_box
        regions.append(
            {
                "text": r.data.text.raw,
                "concepts": _concepts(r.data.concepts),
                "box": f"top {box.top_row:.2f}, left {box.left_col:.2f}, "
                f"bottom {box.bottom_row:.2f}, right {box.right_col:.2f}"
                if r.region_info.HasField("bounding_box")
                else "",
                "value": r.value,
            }
        )
    metadata = ""
    if data.HasField("metadata") and data.metadata.fields:
        from google.protobuf import json_format

        metadata = json_format.MessageToJson(data.metadata, indent=None)[:500]
    return {
        "node_id": run.node_id,
        "type_title": spec.title if spec else type_id,
        "model_id": mv.model.public_id,
        "ok": run.ok,
        "status_code": run.status_code,
        "details": run.details,
        "duration_ms": run.duration_ms,
        "reused": run.reused,
        "skipped": run.skipped,
        "empty": run.empty,
        "concepts": _concepts(data.concepts),
        "text": data.text.raw,
        "regions": regions,
        "has_image": bool(data.image.base64 or data.image.url),
        "metadata": metadata,
    }


@login_required
@require_POST
def try_view(request: HttpRequest, app_id: str, workflow_id: str) -> HttpResponse:
    """Run the saved workflow on an uploaded image or typed text; show every node's output."""
    app = own_app_or_404(request.user, app_id)
    ed = _editor(request, app, workflow_id)
    form = TryForm(request.POST, request.FILES, auto_id="try-%s")
    result: dict = {}
    status = 200
    if ed.saved is None:
        result["error"] = "Save the workflow first: Try it runs the saved workflow."
        status = 400
    elif form.is_valid():
        inp = resources_pb2.Input(id="try-it")
        upload = form.cleaned_data.get("image")
        if upload is not None:
            if upload.size > MAX_TRY_IMAGE_BYTES:
                result["error"] = f"The image is larger than {MAX_TRY_IMAGE_BYTES // 1048576} MB."
            else:
                inp.data.image.base64 = upload.read()
                result["input"] = f"image {upload.name[:80]} ({upload.size} bytes)"
        else:
            inp.data.text.raw = form.cleaned_data["text"]
            result["input"] = "text"
        if form.cleaned_data["metadata"]:
            try:
                inp.data.metadata.update(form.cleaned_data["metadata"])
            except (ValueError, TypeError, RecursionError):
                result["error"] = "The metadata could not be used (too deeply nested?)."
        if "error" not in result:
            run = executor.run_on_inputs(ed.saved, [inp])[0]
            if isinstance(run, ApiError):
                result["error"] = f"The input could not be read: {run.details}"
            else:
                result["keep"] = run.keep
                result["filtered_by"] = run.filtered_by
                result["failed_node"] = run.failed_node
                result["details"] = run.details
                result["nodes"] = [_node_result(r) for r in run.outputs]
                result["total_ms"] = sum(r.duration_ms for r in run.outputs)
        if "error" in result:
            status = 400
    else:
        status = 400
    context = {"result": result, "try_form": form, "ed": ed}
    if request.htmx:
        return render(
            request, "workflows/_try_results.html", context, status=_status(request, status)
        )
    return _render_editor(request, ed, status=status, try_form=form, result=result)


# --- knowledge graph --------------------------------------------------------------------------


def _kg_context(request, app, form=None) -> dict:
    relations = selectors.relations_of_app(app)
    return {
        "current_app": app,
        "form": form or RelationForm(auto_id="kg-%s"),
        "relations": relations,
        "kg_url": reverse("workflows:knowledge_graph", args=[app.public_id]),
        "builder_url": reverse("workflows:builder", args=[app.public_id]),
        "delete_urls": {
            r.id: reverse("workflows:relation_delete", args=[app.public_id, r.id])
            for r in relations
        },
    }


@login_required
@require_http_methods(["GET", "POST"])
def knowledge_graph_view(request: HttpRequest, app_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    status = 200
    form = None
    if request.method == "POST":
        form = RelationForm(request.POST, auto_id="kg-%s")
        if form.is_valid():
            d = form.cleaned_data
            try:
                rel = services.relation_create(
                    app=app,
                    subject_concept_id=d["subject"].strip(),
                    object_concept_id=d["object"].strip(),
                    predicate=d["predicate"],
                    knowledge_graph_id=d["knowledge_graph_id"].strip(),
                    object_app_id=d["object_app_id"].strip(),
                )
            except ApiError as exc:
                form.add_error(RelationForm.FIELD_OF.get(exc.field or ""), exc.details)
            else:
                if not request.htmx:
                    messages.success(request, f"Added: {rel}.")
                    return redirect("workflows:knowledge_graph", app.public_id)
                form = None
        if form is not None:
            status = 400
    context = _kg_context(request, app, form)
    if request.method == "POST" and form is None:
        context["added"] = True
    template = "workflows/_kg_panel.html" if request.htmx else "workflows/knowledge_graph.html"
    return render(request, template, context, status=_status(request, status))


@login_required
@require_POST
def relation_delete_view(request: HttpRequest, app_id: str, relation_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    count = services.relations_delete(app=app, ids=[relation_id[:64]])
    if request.htmx:
        return render(request, "workflows/_kg_panel.html", _kg_context(request, app))
    if count:
        messages.success(request, "Relation deleted.")
    else:
        messages.error(request, "That relation does not exist (already deleted?).")
    return redirect("workflows:knowledge_graph", app.public_id)
