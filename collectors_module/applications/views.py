"""Home (the user's apps), creating an app, and the app page with its inputs gallery."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods

from collectors_module.collectors.selectors import collectors_of_app
from collectors_module.core.errors import ApiError
from collectors_module.core.htmx import HtmxHttpRequest
from collectors_module.datasets import selectors as dataset_selectors
from collectors_module.inputs.selectors import annotations_of_inputs, inputs_of_app
from collectors_module.inputs.services import annotations_import_pending
from collectors_module.inputs.views import input_card, own_app_or_404

from . import services
from .forms import AppCreateForm
from .selectors import apps_of_user

GALLERY_PER_PAGE = 24
MAX_FILTER_LENGTH = 128


@login_required
@require_GET
def home_view(request: HttpRequest) -> HttpResponse:
    apps = apps_of_user(request.user).annotate(input_count=Count("inputs"))
    return render(request, "applications/home.html", {"apps": apps})


@login_required
@require_http_methods(["GET", "POST"])
def app_create_view(request: HttpRequest) -> HttpResponse:
    form = AppCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            app = services.app_create(
                owner=request.user,
                app_id=form.cleaned_data["app_id"].strip(),
                description=form.cleaned_data["description"],
            )
        except ApiError as exc:
            form.add_error("app_id" if exc.field in ("app_id", "app id") else None, exc.details)
        else:
            messages.success(request, f"App {app.public_id} created.")
            return redirect("applications:detail", app.public_id)
    status = 400 if request.method == "POST" else 200
    return render(request, "applications/create.html", {"form": form}, status=status)


def _collector_ids(app) -> list[str]:

    return sorted(collectors_of_app(app).values_list("public_id", flat=True)[:200])


@login_required
@require_GET
def app_detail_view(request: HtmxHttpRequest, app_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    collector = request.GET.get("collector", "").strip()[:MAX_FILTER_LENGTH]
    inputs = inputs_of_app(app)
    if collector:
        inputs = inputs.filter(data__metadata__collector__collector_id=collector)
    dataset = request.GET.get("dataset", "").strip()[:MAX_FILTER_LENGTH]
    if dataset:
        row = dataset_selectors.datasets_of_app(app).filter(public_id=dataset).first()
        inputs = inputs.filter(pk__in=dataset_selectors.input_ids_in_dataset(row) if row else [])
    annotations_import_pending(app=app)
    page = Paginator(inputs, GALLERY_PER_PAGE).get_page(request.GET.get("page"))
    shown = list(page.object_list)
    annotations = annotations_of_inputs(shown)
    context = {
        "current_app": app,
        "page": page,
        "cards": [input_card(i, app, annotations.get(i.pk, [])) for i in shown],
        "collector": collector,
        "collector_ids": _collector_ids(app),
        "dataset": dataset,
        "dataset_ids": list(
            dataset_selectors.datasets_of_app(app).values_list("public_id", flat=True)[:200]
        ),
        "total": page.paginator.count,
    }
    if request.htmx and request.htmx.target == "gallery":
        response = render(request, "applications/detail.html#gallery", context)
    else:
        response = render(request, "applications/detail.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response
