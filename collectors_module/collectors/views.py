"""The Collectors module's pages: create, update, Show All (live counters), status, delete.

Every page belongs to an installation of the Collectors module in one of the user's apps and
acts with that installation's key: the key must be usable (else back to Authorize) and hold the
scopes of the API call the page stands for, checked before each action.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from collectors_module.accounts.selectors import keys_of_user
from collectors_module.capture import selectors as capture_selectors
from collectors_module.core.errors import ApiError
from collectors_module.core.htmx import HtmxHttpRequest
from collectors_module.core.ids import is_valid_id
from collectors_module.datasets import selectors as dataset_selectors
from collectors_module.datasets import services as dataset_services
from collectors_module.inference.selectors import model_version_for_user
from collectors_module.modules.access import installation_access, scopes_for
from collectors_module.workflows.selectors import workflows_of_app
from collectors_module.workflows.stages import post_queue_problem, pre_queue_mode

from . import selectors, services
from .forms import (
    CollectorForm,
    initial_from_collector,
    key_choices,
    parse_source_url,
    workflow_builder_url,
    workflow_notes,
)

FORM_SCOPES = scopes_for("PostCollectors", "ListWorkflows", "ListKeys", "GetModel")
UPDATE_SCOPES = scopes_for("PatchCollectors", "ListWorkflows", "ListKeys", "GetModel")
LIST_SCOPES = scopes_for("ListCollectors")
STATUS_SCOPES = scopes_for("PatchCollectors")
DELETE_SCOPES = scopes_for("DeleteCollectors")
SOURCE_SCOPES = scopes_for("GetModel", "ListKeys")
POLL_SECONDS = 3
TIMELINE_MINUTES = 60
SHOW_ALL_PER_PAGE = 50


def _workflows(app):
    return list(workflows_of_app(app).order_by("public_id"))


def _check_source(user, source_url: str, version_id: str):
    """(model_version, error message) for what the user typed; never raises."""
    if not (source_url or "").strip():
        return None, ""
    try:
        ref = parse_source_url(source_url)
        version_id = (version_id or "").strip() or ref.version_id
        if version_id and not is_valid_id(version_id):
            return None, "That is not a model version ID (letters, digits, '-', '_' or '.')."
        mv = model_version_for_user(
            user,
            owner_user_id=ref.user_id,
            app_id=ref.app_id,
            model_id=ref.model_id,
            version_id=version_id,
        )
    except ApiError as exc:
        if exc.field == "source_url":
            return None, exc.details
        return (
            None,
            "No such model (or version) that you may use: check the URL and the version ID.",
        )
    return mv, ""


def _form_context(request, access, form, *, collector=None, source_mv=None, source_error=""):
    app = access.app
    return {
        "form": form,
        "app": app,
        "current_app": app,
        "installation": access.installation,
        "current_installation": access.installation,
        "collector": collector,
        "builder_url": workflow_builder_url(app),
        "keys_url": reverse("accounts:keys"),
        "source_mv": source_mv,
        "source_error": source_error,
        "key_choices": form.key_choices,
    }


def _build_form(request, access, *, data=None, initial=None, editing=False):
    app = access.app
    source_url = (data or initial or {}).get("source_url", "")
    version = (data or initial or {}).get("model_version_id", "")
    source_mv, source_error = _check_source(request.user, source_url, version)
    workflows = _workflows(app)
    form = CollectorForm(
        data,
        initial=initial,
        workflows=workflows,
        workflow_notes=workflow_notes(workflows, pre_queue_mode, post_queue_problem),
        key_choices_=key_choices(
            keys_of_user(request.user), app=app, source_model=source_mv.model if source_mv else None
        ),
        editing=editing,
        datasets=dataset_selectors.datasets_of_app(app).values_list("public_id", flat=True)[:500],
    )
    return form, source_mv, source_error


def _save(request, access, form, *, collector=None) -> object | None:
    """Validate with the service; on failure the error lands next to its field."""
    if not form.is_valid():
        return None
    nd = form.near_duplicate_settings()
    try:
        # The collector, its destination dataset and its near-duplicate option, or none of them.
        with transaction.atomic():
            if collector is None:
                saved = services.collector_create(
                    app=access.app,
                    actor=request.user,
                    collector_pb=form.to_pb(),
                    limits=form.limits(),
                )
            else:
                pb = form.to_pb()
                pb.id = collector.public_id
                saved = services.collector_overwrite(
                    app=access.app, actor=request.user, collector_pb=pb, limits=form.limits()
                )
            dataset_services.collector_dataset_set(
                app=access.app, collector=saved, dataset_id=form.cleaned_data.get("dataset_id", "")
            )
            return services.collector_set_near_duplicate(
                app=access.app,
                collector_id=saved.public_id,
                enabled=nd["enabled"],
                max_distance=nd["max_distance"],
            )
    except ApiError as exc:
        form.add_api_error(exc)
        return None


@login_required
@require_http_methods(["GET", "POST"])
def create(request: HtmxHttpRequest, app_id: str, inst_slug: str):
    access = installation_access(request, app_id, inst_slug, scopes=FORM_SCOPES)
    if isinstance(access, HttpResponse):
        return access
    if request.method == "POST":
        form, source_mv, source_error = _build_form(request, access, data=request.POST)
        collector = _save(request, access, form)
        if collector is not None:
            messages.success(request, f"Collector {collector.public_id} created.")
            return redirect("collectors:list", access.app.public_id, access.installation.slug)
        status = 400
    else:
        form, source_mv, source_error = _build_form(
            request, access, initial={"caller_user_id": request.user.username, "active": True}
        )
        status = 200
    form.finalize_a11y()
    ctx = _form_context(request, access, form, source_mv=source_mv, source_error=source_error)
    return render(request, "collectors/form.html", ctx, status=status)


def _collector_or_404(app, collector_id: str):
    if not is_valid_id(collector_id):
        raise Http404("Collector does not exist")
    try:
        return selectors.collector_for_app(app, collector_id)
    except ApiError as exc:
        raise Http404(exc.details) from exc


@login_required
@require_http_methods(["GET", "POST"])
def update(request: HtmxHttpRequest, app_id: str, inst_slug: str, collector_id: str):
    access = installation_access(request, app_id, inst_slug, scopes=UPDATE_SCOPES)
    if isinstance(access, HttpResponse):
        return access
    collector = _collector_or_404(access.app, collector_id)
    initial = initial_from_collector(collector)
    destination = dataset_selectors.dataset_of_collector(collector)
    initial["dataset_id"] = destination.public_id if destination else ""
    if request.method == "POST":
        form, source_mv, source_error = _build_form(
            request, access, data=request.POST, initial=initial, editing=True
        )
        saved = _save(request, access, form, collector=collector)
        if saved is not None:
            messages.success(request, f"Collector {saved.public_id} updated.")
            return redirect("collectors:list", access.app.public_id, access.installation.slug)
        status = 400
    else:
        form, source_mv, source_error = _build_form(request, access, initial=initial, editing=True)
        status = 200
    form.finalize_a11y()
    ctx = _form_context(
        request, access, form, collector=collector, source_mv=source_mv, source_error=source_error
    )
    return render(request, "collectors/form.html", ctx, status=status)


@login_required
def source_check(request: HtmxHttpRequest, app_id: str, inst_slug: str):
    """What the typed source URL and version resolve to (htmx partial, or a small page)."""
    access = installation_access(request, app_id, inst_slug, scopes=SOURCE_SCOPES)
    if isinstance(access, HttpResponse):
        return access
    source_url = request.GET.get("source_url", "")[:4096]
    version = request.GET.get("model_version_id", "")[:256]
    source_mv, source_error = _check_source(request.user, source_url, version)
    ctx = {
        "app": access.app,
        "current_app": access.app,
        "installation": access.installation,
        "current_installation": access.installation,
        "source_mv": source_mv,
        "source_error": source_error,
        "source_url": source_url,
    }
    if request.htmx:
        # The key picker's marks depend on the source model: refresh it out of band.
        form = CollectorForm(
            initial={"post_inputs_key_id": request.GET.get("post_inputs_key_id", "")},
            key_choices_=key_choices(
                keys_of_user(request.user),
                app=access.app,
                source_model=source_mv.model if source_mv else None,
            ),
        )
        form.finalize_a11y()
        ctx.update(form=form, key_choices=form.key_choices, oob=True)
        return render(request, "collectors/source_check.html#source-check-oob", ctx)
    return render(request, "collectors/source_check.html", ctx)


def _rows(collectors):
    collectors = list(collectors)
    stats = capture_selectors.collectors_stats(collectors)
    timelines = capture_selectors.capture_timelines(collectors, minutes=TIMELINE_MINUTES)
    datasets = dataset_selectors.datasets_of_collectors(collectors)
    return [_row(c, stats[c.pk], timelines[c.pk], datasets.get(c.pk, "")) for c in collectors]


def _row(collector, stats=None, timeline=None, dataset_id=None):
    if dataset_id is None:
        dataset_id = dataset_selectors.datasets_of_collectors([collector]).get(collector.pk, "")
    if stats is None:
        stats = capture_selectors.collector_stats(collector)
    if timeline is None:
        timeline = capture_selectors.capture_timeline(collector, minutes=TIMELINE_MINUTES)
    return {
        "collector": collector,
        "stats": stats,
        "chart": sparkline(timeline),
        "dataset_id": dataset_id,
    }


CHART_LEFT, CHART_TOP, CHART_BOTTOM = 34, 6, 18  # room for the axis labels around the plot


def sparkline(timeline, *, width: int = 300, height: int = 80) -> dict:
    """Geometry for an inline SVG: one bar per minute for captures, a line for ingested inputs,
    in a plot of `width` x `height` drawn at (CHART_LEFT, CHART_TOP) with axis labels around it;
    each bar has a hover text with its minute and counts, and the busiest minute is named."""
    accepted = [a for _, a, _ in timeline]
    ingested = [i for _, _, i in timeline]
    peak = max([1, *accepted, *ingested])
    count = max(len(timeline), 1)
    step = width / count
    usable = height - 4

    def y(value: int) -> float:
        return round(height - 1 - value * usable / peak, 1)

    bars = [
        {
            "x": round(i * step, 1),
            "y": y(v),
            "w": round(max(step - 0.6, 0.8), 1),
            "h": round(v * usable / peak, 1),
            "label": f"{timeline[i][0]:%H:%M} UTC: {v} captured, {ingested[i]} ingested",
        }
        for i, v in enumerate(accepted)
        if v
    ]
    busiest = max(range(len(accepted)), key=lambda i: accepted[i]) if any(accepted) else None
    line = " ".join(f"{round(i * step + step / 2, 1)},{y(v)}" for i, v in enumerate(ingested))
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "ingested_points": line,
        "accepted_total": sum(accepted),
        "ingested_total": sum(ingested),
        "peak": peak,
        "minutes": len(timeline),
        "busiest": (
            f"{timeline[busiest][0]:%H:%M} UTC ({accepted[busiest]} captured)"
            if busiest is not None
            else ""
        ),
        "left": CHART_LEFT,
        "top": CHART_TOP,
        "outer_width": width + CHART_LEFT + 8,
        "outer_height": height + CHART_TOP + CHART_BOTTOM,
        "x_axis_y": height + CHART_TOP + 13,
        "mid_x": CHART_LEFT + width // 2,
        "right_x": CHART_LEFT + width,
    }


def _list_ctx(access, **extra):
    return {
        "app": access.app,
        "current_app": access.app,
        "installation": access.installation,
        "current_installation": access.installation,
        "poll_seconds": POLL_SECONDS,
        **extra,
    }


@login_required
def collector_list(request: HtmxHttpRequest, app_id: str, inst_slug: str):
    """Show All: every collector of the app with details, status, counters and a chart."""
    access = installation_access(request, app_id, inst_slug, scopes=LIST_SCOPES)
    if isinstance(access, HttpResponse):
        return access
    page = Paginator(selectors.collectors_of_app(access.app), SHOW_ALL_PER_PAGE).get_page(
        request.GET.get("page")
    )
    rows = _rows(page.object_list)
    return render(
        request, "collectors/collector_list.html", _list_ctx(access, rows=rows, page=page)
    )


@login_required
def collector_stats(request: HtmxHttpRequest, app_id: str, inst_slug: str, collector_id: str):
    """The live counters and chart of one collector (htmx polling); a full page redirects."""
    access = installation_access(request, app_id, inst_slug, scopes=LIST_SCOPES)
    if isinstance(access, HttpResponse):
        return access
    collector = _collector_or_404(access.app, collector_id)
    if not request.htmx:
        return redirect("collectors:list", access.app.public_id, access.installation.slug)
    return render(
        request,
        "collectors/collector_list.html#collector-stats",
        _list_ctx(access, row=_row(collector)),
    )


@login_required
@require_POST
def collector_status(request: HtmxHttpRequest, app_id: str, inst_slug: str, collector_id: str):
    """Deactivate (active=0, optionally discard_pending=1) or reactivate (active=1); htmx gets
    the row partial."""
    access = installation_access(request, app_id, inst_slug, scopes=STATUS_SCOPES)
    if isinstance(access, HttpResponse):
        return access
    collector = _collector_or_404(access.app, collector_id)
    active = request.POST.get("active", "") in ("1", "true", "on")
    discard = request.POST.get("discard_pending", "") in ("1", "true", "on")
    discarded = 0
    if active:
        collector = services.collector_activate(app=access.app, collector_id=collector.public_id)
    else:
        collector, discarded = services.collector_deactivate(
            app=access.app, collector_id=collector.public_id, discard_pending=discard
        )
    collector = selectors.collector_for_app(access.app, collector.public_id)
    if request.htmx:
        return render(
            request,
            "collectors/collector_list.html#collector-row",
            _list_ctx(access, row=_row(collector)),
        )
    done = "reactivated" if active else "deactivated"
    if discarded:
        done += f"; {discarded} pending capture{'s' if discarded != 1 else ''} discarded"
    messages.success(request, f"Collector {collector.public_id} {done}.")
    return redirect("collectors:list", access.app.public_id, access.installation.slug)


@login_required
@require_http_methods(["GET", "POST"])
def collector_delete(request: HtmxHttpRequest, app_id: str, inst_slug: str, collector_id: str):
    """GET: confirmation page (no JavaScript). POST: delete; htmx gets an empty row."""
    access = installation_access(request, app_id, inst_slug, scopes=DELETE_SCOPES)
    if isinstance(access, HttpResponse):
        return access
    collector = _collector_or_404(access.app, collector_id)
    if request.method == "GET":
        return render(
            request, "collectors/delete_confirm.html", _list_ctx(access, collector=collector)
        )
    _, discarded = services.collectors_delete(app=access.app, ids=[collector.public_id])
    if request.htmx:
        remaining = selectors.collectors_of_app(access.app).exists()
        return render(
            request,
            "collectors/collector_list.html#deleted-row",
            _list_ctx(access, collector=collector, remaining=remaining, discarded=discarded),
        )
    note = (
        f"; {discarded} pending capture{'s' if discarded != 1 else ''} discarded"
        if discarded
        else ""
    )
    messages.success(request, f"Collector {collector.public_id} deleted{note}.")
    return redirect("collectors:list", access.app.public_id, access.installation.slug)


PREVIEW_SCOPES = scopes_for("ListWorkflows", "ListKeys", "GetModel", "ListCollectors")


@login_required
@require_POST
def preview(request: HtmxHttpRequest, app_id: str, inst_slug: str):
    """The create / update form's preview panel (htmx): what the collector, as the form would
    save it, keeps of recent traffic and why. Saves nothing."""
    access = installation_access(request, app_id, inst_slug, scopes=PREVIEW_SCOPES)
    if isinstance(access, HttpResponse):
        return access
    collector_id = request.GET.get("collector", "")
    existing = _collector_or_404(access.app, collector_id) if collector_id else None
    data = request.POST.copy()
    if existing is not None:
        data["id"] = existing.public_id  # the id field is disabled when editing
    form, _mv, _err = _build_form(
        request,
        access,
        data=data,
        initial=initial_from_collector(existing) if existing else None,
        editing=existing is not None,
    )
    ctx = {"form": form, "result": None, "error": ""}
    if not form.is_valid():
        ctx["error"] = "Fix the fields marked in the form (press Create or Update to see them)."
    else:
        pb = form.to_pb()
        if existing is not None:
            pb.id = existing.public_id
        try:
            draft = services.collector_draft(
                app=access.app,
                actor=request.user,
                collector_pb=pb,
                limits=form.limits(),
                near_duplicate=form.near_duplicate_settings(),
            )
            ctx["result"] = capture_selectors.preview_collector(draft)
        except ApiError as exc:
            ctx["error"] = exc.details or exc.description
    return render(request, "collectors/_preview.html", ctx)
