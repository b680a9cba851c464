"""Module pages: catalogue, module page, install (options 1 and 2), authorize, manage, uninstall.

Function views: parse, check, call one service, render or redirect (Post/Redirect/Get).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from collectors_module.applications.models import Visibility
from collectors_module.applications.selectors import apps_of_user
from collectors_module.core.errors import ApiError
from collectors_module.core.htmx import HtmxHttpRequest

from . import services
from .access import own_app, plan_required_response
from .scopes import describe_scopes
from .selectors import (
    installation_for_app,
    installations_of_app,
    module_by_slug,
    module_from_url,
    modules_catalogue,
)


def _module_or_404(slug: str):
    try:
        return module_by_slug(slug)
    except ApiError as exc:
        raise Http404(exc.details) from exc


def _installation_or_404(app, slug: str):
    try:
        return installation_for_app(app, slug)
    except ApiError as exc:
        raise Http404(exc.details) from exc


def _suggest_slug(module, app) -> str:
    taken = set(installations_of_app(app).values_list("slug", flat=True))
    base = module.slug
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


@login_required
def catalogue(request):
    return render(request, "modules/catalogue.html", {"modules": modules_catalogue()})


@login_required
def module_detail(request, slug: str):
    module = _module_or_404(slug)
    return render(
        request,
        "modules/detail.html",
        {
            "module": module,
            "apps": list(apps_of_user(request.user)),
            "module_url": request.build_absolute_uri(reverse("modules:detail", args=[module.slug])),
            "plan_ok": request.user.can_use_collectors,
            "plan_message": services.PLAN_MESSAGE,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def install(request, slug: str):
    """Step 1 (no app chosen yet): choose user and app. Step 2: destination URL + visibility."""
    module = _module_or_404(slug)
    if not request.user.can_use_collectors:
        return plan_required_response(request)
    source = request.POST if request.method == "POST" else request.GET
    app_id = source.get("app", "").strip()
    user_id = source.get("user", request.user.username).strip()
    if user_id != request.user.username:
        # Only the signed-in user can be chosen; anyone else "does not exist".
        raise Http404("User does not exist")
    apps = list(apps_of_user(request.user))
    if not app_id:
        return render(request, "modules/install_select.html", {"module": module, "apps": apps})
    app = own_app(request, app_id)
    errors: dict[str, str] = {}
    values = {"slug": _suggest_slug(module, app), "visibility": str(Visibility.PRIVATE)}
    status = 200
    if request.method == "POST":
        values = {
            "slug": request.POST.get("slug", ""),
            "visibility": request.POST.get("visibility", ""),
        }
        try:
            inst = services.installation_create(
                module=module,
                app=app,
                user=request.user,
                slug=values["slug"],
                visibility=values["visibility"],
            )
        except ApiError as exc:
            errors[exc.field or "form"] = exc.details or exc.description
            status = 400
        else:
            return redirect("modules:installed", app.public_id, inst.slug)
    return render(
        request,
        "modules/install.html",
        {
            "module": module,
            "app": app,
            "current_app": app,
            "values": values,
            "errors": errors,
            "visibilities": Visibility.choices,
        },
        status=status,
    )


@login_required
def installed(request, app_id: str, inst_slug: str):
    app = own_app(request, app_id)
    inst = _installation_or_404(app, inst_slug)
    return render(
        request,
        "modules/installed.html",
        {"installation": inst, "app": app, "current_app": app, "current_installation": inst},
    )


@login_required
def use(request, app_id: str, inst_slug: str):
    """The installed module's entry point: authorize first, then the module's first page."""
    app = own_app(request, app_id)
    inst = _installation_or_404(app, inst_slug)
    if not request.user.can_use_collectors:
        return plan_required_response(request, app=app)
    if not services.installation_is_authorized(inst):
        return redirect("modules:authorize", app.public_id, inst.slug)
    return redirect("collectors:create", app.public_id, inst.slug)


@login_required
@require_http_methods(["GET", "POST"])
def authorize(request, app_id: str, inst_slug: str):
    app = own_app(request, app_id)
    inst = _installation_or_404(app, inst_slug)
    if not request.user.can_use_collectors:
        return plan_required_response(request, app=app)
    if request.method == "POST":
        created = services.installation_authorize(installation=inst, user=request.user)
        messages.success(
            request,
            f"Authorized. The module now acts with the app key {created.key.display_name}, valid in "
            f"app {app.public_id} only; you can revoke it on the Keys page at any time.",
        )
        return redirect("collectors:create", app.public_id, inst.slug)
    key = inst.key
    reason = ""
    if key is not None and key.revoked_at is not None:
        reason = "The key this module used was revoked, so it needs your authorization again."
    elif key is not None and not key.is_usable:
        reason = "The key this module used has expired, so it needs your authorization again."
    return render(
        request,
        "modules/authorize.html",
        {
            "installation": inst,
            "app": app,
            "current_app": app,
            "current_installation": inst,
            "scopes": describe_scopes(inst.module.required_scopes),
            "other_apps": [a.public_id for a in apps_of_user(request.user) if a.pk != app.pk],
            "reason": reason,
            "authorized": services.installation_is_authorized(inst),
        },
    )


@login_required
def manage(request, app_id: str):
    """Option 2: paste a module URL to install it; list and uninstall this app's installations."""
    app = own_app(request, app_id)
    errors: dict[str, str] = {}
    module_url = request.GET.get("module_url", "")
    status = 200
    if "module_url" in request.GET:
        try:
            module = module_from_url(module_url)
        except ApiError as exc:
            errors[exc.field or "module_url"] = exc.details
            status = 400
        else:
            if not request.user.can_use_collectors:
                return plan_required_response(request, app=app)
            return redirect(
                reverse("modules:install", args=[module.slug])
                + f"?user={request.user.username}&app={app.public_id}"
            )
    return render(
        request,
        "modules/manage.html",
        {
            "app": app,
            "current_app": app,
            "installations": installations_of_app(app),
            "errors": errors,
            "module_url": module_url,
            "example_url": request.build_absolute_uri(
                reverse("modules:detail", args=["collector"])
            ),
            "plan_ok": request.user.can_use_collectors,
            "plan_message": services.PLAN_MESSAGE,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def uninstall(request: HtmxHttpRequest, app_id: str, inst_slug: str):
    """GET: a confirmation page (works without JavaScript). POST: uninstall and revoke the key."""
    app = own_app(request, app_id)
    inst = _installation_or_404(app, inst_slug)
    if request.method == "GET":
        return render(
            request,
            "modules/uninstall_confirm.html",
            {"installation": inst, "app": app, "current_app": app},
        )
    return _do_uninstall(request, app, inst)


def _do_uninstall(request: HtmxHttpRequest, app, inst):
    services.installation_uninstall(installation=inst, user=request.user)
    if request.htmx:
        # The row disappears; the sidebar refreshes on the next page load.
        return HttpResponse("")
    messages.success(
        request,
        f"Uninstalled {inst.module.title} from {app.public_id}/{inst.slug}; its key was revoked.",
    )
    return redirect("modules:manage", app.public_id)
