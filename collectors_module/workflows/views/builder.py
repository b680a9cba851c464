"""The builder's pages: the app's workflows, the editor, and the draft's add/remove/save/discard.

Adding or removing a node changes the session draft; "Save" stores it through
`services.workflow_save_from_builder`. A validation error naming a node (`ApiError.field` = node
id) is shown next to that node.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from collectors_module.core.errors import SC, ApiError
from collectors_module.core.htmx import HtmxHttpRequest, partial_status
from collectors_module.inputs.views import own_app_or_404

from .. import conf, selectors, services
from ..forms import TryForm, WorkflowCreateForm
from ..model_types import get_model_type
from ..recipes import RECIPES
from .choices import (
    check_operator,
    choice_groups,
    edit_node_form,
    new_node_form,
    node_choice,
    node_info,
    resolve_choice,
)
from .draft import (
    Editor,
    drop_draft,
    load_editor,
    saved_workflow,
    start_draft,
    store_draft,
    summary,
)
from .layout import graph


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


def editor_context(
    request: HtmxHttpRequest,
    ed: Editor,
    *,
    choice_key: str = "",
    choice=None,
    node_form=None,
    **extra,
) -> dict:
    if node_form is None and choice_key:
        choice = resolve_choice(ed.app, request.user, choice_key)
        if choice is not None:
            node_form = new_node_form(ed, choice)
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
                "edit_url": reverse(
                    "workflows:node_edit", args=[ed.app.public_id, ed.workflow_id, n["id"]]
                ),
            }
        )
    context = {
        "current_app": ed.app,
        "ed": ed,
        "nodes": view_nodes,
        "graph": graph(ed),
        "urls": _urls(ed.app, ed.workflow_id),
        "choice_groups": choice_groups(ed.app, request.user),
        "choice": choice,
        "choice_key": choice.key if choice else "",
        "node_form": node_form,
        "try_form": extra.pop("try_form", None) or TryForm(auto_id="try-%s"),
        "description": ed.saved.description if ed.saved is not None else "",
    }
    context.update(extra)
    return context


def render_editor(request: HtmxHttpRequest, ed: Editor, status: int = 200, **kw) -> HttpResponse:
    context = editor_context(request, ed, **kw)
    template = "workflows/edit.html#editor" if request.htmx else "workflows/edit.html"
    return render(request, template, context, status=partial_status(request, status))


@login_required
@require_http_methods(["GET", "POST"])
def builder_view(request: HtmxHttpRequest, app_id: str) -> HttpResponse:
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
                        app=app,
                        recipe_id=recipe_id,
                        workflow_id=workflow_id,
                        key_value=form.cleaned_data.get("key_json"),
                    )
                    drop_draft(request, app, workflow_id)
                    messages.success(request, f"Workflow {workflow_id} created from a template.")
                else:
                    if saved_workflow(app, workflow_id) is not None:
                        raise ApiError(
                            SC.WORKFLOW_DUPLICATE,
                            f"A workflow with id '{workflow_id}' already exists",
                            field="id",
                        )
                    start_draft(request, app, workflow_id)
                    messages.info(request, "Add nodes, then save the workflow.")
            except ApiError as exc:
                if exc.field in ("id", ""):
                    form.add_error("workflow_id", exc.details)
                elif exc.field.startswith("output_info"):
                    form.add_error("key_value", exc.details)  # the key parameter was refused
                else:
                    form.add_error(None, exc.details)
            else:
                return redirect("workflows:edit", app.public_id, workflow_id)
        status = 400
    elif request.htmx and request.htmx.target == "key-param":
        form = WorkflowCreateForm(initial={"recipe": request.GET.get("recipe", "")[:100]})
        return render(request, "workflows/builder.html#key-param", {"form": form})
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
def edit_view(request: HtmxHttpRequest, app_id: str, workflow_id: str) -> HttpResponse:
    """The editor. `?choice=` shows the generated form of a model or operator to add."""
    app = own_app_or_404(request.user, app_id)
    ed = load_editor(request, app, workflow_id)
    choice_key = request.GET.get("choice", "")[:200]
    context = editor_context(request, ed, choice_key=choice_key)
    if request.htmx and request.htmx.target == "add-node":
        response = render(request, "workflows/edit.html#add-node", context)
    else:
        response = render(request, "workflows/edit.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@login_required
@require_POST
def node_add_view(request: HtmxHttpRequest, app_id: str, workflow_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    ed = load_editor(request, app, workflow_id)
    choice = resolve_choice(app, request.user, request.POST.get("choice", ""))
    if choice is None:
        ed.error = "Choose a model or an operator from the list."
        return render_editor(request, ed, status=400)
    form = new_node_form(ed, choice, data=request.POST)
    limit = conf.max_nodes()
    if len(ed.nodes) >= limit:
        form.add_error(None, f"A workflow may have at most {limit} nodes.")
    if form.is_valid():
        check_operator(form, choice)
    if not form.is_valid():
        return render_editor(request, ed, status=400, node_form=form, choice=choice)
    info = form.cleaned_data["output_info"]
    params = info.get("params") or {}
    concepts = (info.get("data") or {}).get("concepts") or []
    node = {
        "id": form.cleaned_data["node_id"],
        "type": choice.type_id,
        "label": choice.label,
        "inputs": list(form.cleaned_data["inputs"]),
        "summary": summary(params, concepts),
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
    store_draft(request, ed)
    if request.htmx:
        return render_editor(request, ed)
    messages.success(request, f"Node {node['id']} added (not saved yet).")
    return redirect("workflows:edit", app.public_id, workflow_id)


@login_required
@require_POST
def node_remove_view(
    request: HtmxHttpRequest, app_id: str, workflow_id: str, node_id: str
) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    ed = load_editor(request, app, workflow_id)
    if node_id not in {n["id"] for n in ed.nodes}:
        raise Http404("Node does not exist")
    readers = [n["id"] for n in ed.nodes if node_id in n["inputs"]]
    if readers:
        ed.node_errors[node_id] = (
            f"Node {', '.join(readers)} reads this node's output: remove "
            f"{'it' if len(readers) == 1 else 'them'} first, or this node cannot go."
        )
        return render_editor(request, ed, status=400)
    ed.nodes = [n for n in ed.nodes if n["id"] != node_id]
    store_draft(request, ed)
    if request.htmx:
        return render_editor(request, ed)
    messages.success(request, f"Node {node_id} removed (not saved yet).")
    return redirect("workflows:edit", app.public_id, workflow_id)


@login_required
@require_POST
def save_view(request: HtmxHttpRequest, app_id: str, workflow_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    ed = load_editor(request, app, workflow_id)
    try:
        services.workflow_save_from_builder(
            app=app, workflow_id=workflow_id, nodes=ed.nodes, new=ed.saved is None
        )
    except ApiError as exc:
        if exc.field in {n["id"] for n in ed.nodes}:
            ed.node_errors[exc.field] = exc.details
            ed.error = f"Not saved: node {exc.field} has a problem (see below)."
        else:
            ed.error = f"Not saved: {exc.details}"
        return render_editor(request, ed, status=400)
    drop_draft(request, app, workflow_id)
    messages.success(request, f"Workflow {workflow_id} saved.")
    url = reverse("workflows:edit", args=[app.public_id, workflow_id])
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@login_required
@require_POST
def discard_view(request: HtmxHttpRequest, app_id: str, workflow_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    ed = load_editor(request, app, workflow_id)
    drop_draft(request, app, workflow_id)
    if ed.saved is None:
        messages.info(request, f"Draft {workflow_id} discarded.")
        return redirect("workflows:builder", app.public_id)
    messages.info(request, "Unsaved changes discarded.")
    return redirect("workflows:edit", app.public_id, workflow_id)


@login_required
@require_POST
def delete_view(request: HtmxHttpRequest, app_id: str, workflow_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    ed = load_editor(request, app, workflow_id)
    drop_draft(request, app, workflow_id)
    if ed.saved is not None:
        try:
            services.workflow_delete(app=app, workflow_id=workflow_id)
        except ApiError as exc:
            messages.error(request, exc.details)
            return redirect("workflows:edit", app.public_id, workflow_id)
    messages.success(request, f"Workflow {workflow_id} deleted.")
    url = reverse("workflows:builder", args=[app.public_id])
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@login_required
@require_http_methods(["GET", "POST"])
def node_edit_view(
    request: HtmxHttpRequest, app_id: str, workflow_id: str, node_id: str
) -> HttpResponse:
    """Edit a node's parameters (and the nodes it reads) in place, in the draft: the form is
    generated from its model type, each error next to its field. "Save" stores it."""
    app = own_app_or_404(request.user, app_id)
    ed = load_editor(request, app, workflow_id)
    node = next((n for n in ed.nodes if n["id"] == node_id), None)
    if node is None:
        raise Http404("Node does not exist")
    choice = node_choice(ed, request.user, node)
    if choice is None:
        ed.node_errors[node_id] = "This node's model cannot be read any more: remove the node."
        return render_editor(request, ed, status=400)
    if request.method == "GET":
        return render_editor(
            request, ed, edit_node=node_id, edit_form=edit_node_form(ed, node, choice)
        )
    data = request.POST.copy()
    data["node_id"] = node_id  # the id does not change here
    form = edit_node_form(ed, node, choice, data=data)
    if form.is_valid():
        check_operator(form, choice)
    if not form.is_valid():
        return render_editor(request, ed, status=400, edit_node=node_id, edit_form=form)
    info = form.cleaned_data["output_info"]
    if node["kind"] == "operator":
        node["output_info"] = info
    else:
        node["override"] = info
    node["inputs"] = list(form.cleaned_data["inputs"])
    current = node_info(node, choice)
    node["summary"] = summary(
        current.get("params") or {}, (current.get("data") or {}).get("concepts") or []
    )
    store_draft(request, ed)
    if request.htmx:
        return render_editor(request, ed)
    messages.success(request, f"Node {node_id} changed (not saved yet).")
    return redirect("workflows:edit", app.public_id, workflow_id)
