"""The account's capture grants page: grant capture to a user, list grants given and received,
revoke one (the same services as the CollectorExtensions grant RPCs)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from collectors_module.core.errors import ApiError

from . import services
from .selectors import capture_grants_given, capture_grants_received


def _page(request: HttpRequest, *, error: str = "", value: str = "", status: int = 200):
    return render(
        request,
        "accounts/capture_grants.html",
        {
            "given": capture_grants_given(request.user),
            "received": capture_grants_received(request.user),
            "grantee_error": error,
            "grantee_value": value,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def capture_grants_view(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request)
    value = request.POST.get("grantee_user_id", "")[:150]
    try:
        grant = services.capture_grant_create(grantor=request.user, grantee_user_id=value)
    except ApiError as exc:
        return _page(request, error=exc.details, value=value, status=400)
    messages.success(
        request, f"{grant.grantee.username}'s collectors may now capture your predictions."
    )
    return redirect("accounts:capture_grants")


@login_required
@require_POST
def capture_grant_revoke_view(request: HttpRequest, grantee_user_id: str) -> HttpResponse:
    try:
        services.capture_grant_revoke(grantor=request.user, grantee_user_id=grantee_user_id)
    except ApiError as exc:
        raise Http404("No such grant") from exc  # nothing of this user's to revoke
    messages.success(request, f"Grant revoked: {grantee_user_id[:64]} can no longer capture you.")
    return redirect("accounts:capture_grants")
