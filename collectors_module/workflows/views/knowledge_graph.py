"""The app's knowledge graph: concept relations that the mapper operators follow."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from collectors_module.core.errors import ApiError
from collectors_module.core.htmx import HtmxHttpRequest, partial_status
from collectors_module.inputs.views import own_app_or_404

from .. import selectors, services
from ..forms import RelationForm

PAGE = "workflows/knowledge_graph.html"
PANEL = "workflows/knowledge_graph.html#kg-panel"


def _kg_context(app, form=None) -> dict:
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
def knowledge_graph_view(request: HtmxHttpRequest, app_id: str) -> HttpResponse:
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
    context = _kg_context(app, form)
    if request.method == "POST" and form is None:
        context["added"] = True
    template = PANEL if request.htmx else PAGE
    return render(request, template, context, status=partial_status(request, status))


@login_required
@require_POST
def relation_delete_view(request: HtmxHttpRequest, app_id: str, relation_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    count = services.relations_delete(app=app, ids=[relation_id[:64]])
    if request.htmx:
        return render(request, PANEL, _kg_context(app))
    if count:
        messages.success(request, "Relation deleted.")
    else:
        messages.error(request, "That relation does not exist (already deleted?).")
    return redirect("workflows:knowledge_graph", app.public_id)
