"""Access checks shared by every page of an installed module.

Order: the app must be the user's own (else 404), the installation must exist in it (else 404),
the user's plan must include modules (else the plan page), the installation's key must be usable
(else back to Authorize), and the key must hold the scopes the page's action needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from collectors_module.api.descriptors import get_rpc
from collectors_module.applications.selectors import app_for_user
from collectors_module.core.errors import ApiError
from collectors_module.core.htmx import HtmxHttpRequest
from collectors_module.core.ids import is_valid_id

from .selectors import installation_for_app
from .services import PLAN_MESSAGE, installation_is_authorized


def scopes_for(*rpc_names: str) -> tuple[str, ...]:
    """The union of the scopes the named RPCs require, as the module acts through them."""
    out: dict[str, None] = {}
    for name in rpc_names:
        out.update(dict.fromkeys(get_rpc(name).scopes))
    return tuple(out)


def own_app(request, app_id: str):
    """The request user's own app `app_id`, or 404 (another user's app does not exist)."""
    if not is_valid_id(app_id):
        raise Http404("App does not exist")
    try:
        return app_for_user(
            request.user, owner_user_id=request.user.username, app_id=app_id, write=True
        )
    except ApiError as exc:
        raise Http404(exc.details) from exc


def plan_required_response(request, *, app=None, status: int = 403) -> HttpResponse:
    return render(
        request,
        "modules/plan_required.html",
        {"current_app": app, "plan_message": PLAN_MESSAGE},
        status=status,
    )


@dataclass
class ModuleAccess:
    app: object
    installation: object
    key: object


def installation_access(
    request: HtmxHttpRequest, app_id: str, slug: str, *, scopes: tuple[str, ...] = ()
) -> ModuleAccess | HttpResponse:
    """Resolve and check an installation for a module page; a response means 'return this'."""
    app = own_app(request, app_id)
    try:
        inst = installation_for_app(app, slug)
    except ApiError as exc:
        raise Http404(exc.details) from exc
    if not request.user.can_use_collectors:
        return plan_required_response(request, app=app)
    if not installation_is_authorized(inst):
        if request.htmx:
            return HttpResponseClientRedirect(_authorize_url(app, inst))
        return redirect(_authorize_url(app, inst))
    missing = inst.key.missing_scopes(scopes)
    if missing:
        return render(
            request,
            "modules/scopes_missing.html",
            {"current_app": app, "installation": inst, "missing": missing},
            status=403,
        )
    return ModuleAccess(app=app, installation=inst, key=inst.key)


def _authorize_url(app, inst) -> str:

    return reverse("modules:authorize", args=[app.public_id, inst.slug])
