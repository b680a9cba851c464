"""Datasets pages of an app (list, create, add the inputs of a gallery filter, versions, exports
with a progress bar polled by htmx) and the authenticated download of an export archive."""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from collectors_module.accounts.auth import authenticate
from collectors_module.collectors.selectors import collectors_of_app
from collectors_module.core.errors import ApiError
from collectors_module.core.htmx import HtmxHttpRequest, partial_status
from collectors_module.inputs.views import own_app_or_404

from . import selectors, services
from .models import (
    EXPORT_IN_PROGRESS,
    EXPORT_PENDING,
    EXPORT_SUCCESS,
    FORMATS,
    VERSION_IN_PROGRESS,
    VERSION_PENDING,
    VERSION_READY,
)

POLL_SECONDS = 1
DOWNLOAD_SCOPES = ("Datasets:Get",)


class DatasetCreateForm(forms.Form):
    dataset_id = forms.CharField(label="Dataset ID", max_length=128)
    description = forms.CharField(label="Description", max_length=512, required=False)


class AddInputsForm(forms.Form):
    collector = forms.CharField(
        label="Captured by collector",
        max_length=128,
        required=False,
        help_text="Leave empty to add every input of the app.",
        widget=forms.TextInput(attrs={"list": "collector-ids", "placeholder": "collector id"}),
    )


def _dataset_or_404(app, dataset_id: str):
    try:
        return selectors.dataset_for_app(app, dataset_id)
    except ApiError as exc:
        raise Http404("No such dataset") from exc


@login_required
@require_http_methods(["GET", "POST"])
def dataset_list_view(request: HtmxHttpRequest, app_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    form = DatasetCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        pb = resources_pb2.Dataset(
            id=form.cleaned_data["dataset_id"].strip(),
            description=form.cleaned_data["description"],
        )
        try:
            (dataset,) = services.datasets_create(app=app, dataset_pbs=[pb])
        except ApiError as exc:
            form.add_error("dataset_id" if exc.field in ("id", "") else None, exc.details)
        else:
            messages.success(request, f"Dataset {dataset.public_id} created.")
            return redirect("datasets:detail", app.public_id, dataset.public_id)
    status = 400 if request.method == "POST" else 200
    context = {"current_app": app, "datasets": selectors.datasets_of_app(app), "form": form}
    return render(request, "datasets/list.html", context, status=status)


def _detail_context(app, dataset, add_form=None):
    versions = list(selectors.versions_of_dataset(dataset)[:50])
    rows = []
    for v in versions:
        exports = selectors.exports_of_version(v)
        rows.append({"version": v, "exports": [_export_view(exports.get(f), f) for f in FORMATS]})
    return {
        "current_app": app,
        "dataset": dataset,
        "inputs_total": dataset.inputs_total,
        "versions": rows,
        "add_form": add_form or AddInputsForm(),
        "collector_ids": sorted(collectors_of_app(app).values_list("public_id", flat=True)[:200]),
        "busy": any(
            r["version"].status_code in (VERSION_PENDING, VERSION_IN_PROGRESS)
            or any(e["busy"] for e in r["exports"])
            for r in rows
        ),
        "poll_seconds": POLL_SECONDS,
        "READY": VERSION_READY,
    }


def _export_view(export, fmt: str) -> dict:
    if export is None:
        return {"format": fmt, "export": None, "busy": False, "percent": 0}
    busy = export.status_code in (EXPORT_PENDING, EXPORT_IN_PROGRESS) and not (
        selectors.export_is_stale(export)
    )
    percent = int(100 * export.processed / export.total) if export.total else 0
    return {
        "format": fmt,
        "export": export,
        "busy": busy,
        "percent": 100 if export.status_code == EXPORT_SUCCESS else min(percent, 99),
        "done": export.status_code == EXPORT_SUCCESS,
        "stale": selectors.export_is_stale(export),
    }


@login_required
@require_GET
def dataset_detail_view(request: HtmxHttpRequest, app_id: str, dataset_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    dataset = _dataset_or_404(app, dataset_id)
    context = _detail_context(app, dataset)
    for row in context["versions"]:
        services.version_kick(row["version"])
    if request.htmx and request.htmx.target == "versions":
        response = render(request, "datasets/detail.html#versions", context)
    else:
        response = render(request, "datasets/detail.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@login_required
@require_POST
def dataset_add_inputs_view(request: HtmxHttpRequest, app_id: str, dataset_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    dataset = _dataset_or_404(app, dataset_id)
    form = AddInputsForm(request.POST)
    if form.is_valid():
        collector = form.cleaned_data["collector"].strip()
        if collector and not collectors_of_app(app).filter(public_id=collector).exists():
            form.add_error("collector", f"There is no collector '{collector}' in this app.")
        else:
            n = services.dataset_inputs_add_matching(
                app=app, dataset=dataset, collector_id=collector
            )
            what = f"captured by {collector}" if collector else "of the app"
            messages.success(request, f"{n} input{'s' if n != 1 else ''} {what} added.")
            return redirect("datasets:detail", app.public_id, dataset.public_id)
    dataset = _dataset_or_404(app, dataset_id)
    context = _detail_context(app, dataset, add_form=form)
    return render(request, "datasets/detail.html", context, status=partial_status(request, 400))


@login_required
@require_POST
def version_create_view(request: HtmxHttpRequest, app_id: str, dataset_id: str) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    dataset = _dataset_or_404(app, dataset_id)
    try:
        version = services.version_create(
            app=app,
            dataset=dataset,
            version_id=request.POST.get("version_id", "").strip()[:128],
            description=request.POST.get("description", "")[:512],
        )
    except ApiError as exc:
        messages.error(request, exc.details)
    else:
        messages.success(request, f"Version {version.public_id} is being built.")
    return redirect("datasets:detail", app.public_id, dataset.public_id)


@login_required
@require_POST
def export_create_view(
    request: HtmxHttpRequest, app_id: str, dataset_id: str, version_id: str
) -> HttpResponse:
    app = own_app_or_404(request.user, app_id)
    dataset = _dataset_or_404(app, dataset_id)
    try:
        version = selectors.version_for_dataset(dataset, version_id)
        services.exports_request(version=version, formats=[request.POST.get("format", "")])
    except ApiError as exc:
        messages.error(request, exc.details)
    if request.htmx:
        dataset = _dataset_or_404(app, dataset_id)
        return render(request, "datasets/detail.html#versions", _detail_context(app, dataset))
    return redirect("datasets:detail", app.public_id, dataset.public_id)


def _download_user(request: HttpRequest, app_id: str):
    """The logged-in owner, or the owner of an API key with Datasets:Get (an app key only for
    its own app); None otherwise."""
    header = request.META.get("HTTP_AUTHORIZATION")
    if header is None:
        return request.user if request.user.is_authenticated else None
    try:
        key = authenticate(header)
    except ApiError:
        return None
    if not key.has_scopes(list(DOWNLOAD_SCOPES)):
        return None
    if key.app_id is not None and key.app.public_id != app_id:
        return None
    return key.owner


@require_GET
def export_download_view(
    request: HttpRequest, app_id: str, dataset_id: str, version_id: str, fmt: str
) -> HttpResponse:
    user = _download_user(request, app_id)
    if user is None:
        if "HTTP_AUTHORIZATION" in request.META:
            raise Http404("No such export")  # a bad key learns nothing
        return redirect_to_login(request.get_full_path())
    app = own_app_or_404(user, app_id)
    dataset = _dataset_or_404(app, dataset_id)
    try:
        version = selectors.version_for_dataset(dataset, version_id)
    except ApiError as exc:
        raise Http404("No such version") from exc
    export = selectors.export_for_version(version, fmt.upper())
    if export is None or export.status_code != EXPORT_SUCCESS or not export.storage_name:
        raise Http404("This export is not ready")
    try:
        handle = default_storage.open(export.storage_name, "rb")
    except (FileNotFoundError, OSError) as exc:
        raise Http404("The archive is missing from storage") from exc
    filename = f"{dataset.public_id}-{version.public_id}-{fmt.lower()}.zip"
    response = FileResponse(
        handle, as_attachment=True, filename=filename, content_type="application/zip"
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
