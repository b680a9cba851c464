"""A model's page: what it is and who its owner's collectors may capture on it.

Any signed-in user who may read the model sees it (so a caller learns, before predicting,
whether the owner captures every caller); only the owner can change the opt-in (CSRF form)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from collectors_module.core.errors import ApiError

from . import services
from .selectors import model_for_user


@login_required
@require_http_methods(["GET", "POST"])
def model_view(request: HttpRequest, user_id: str, app_id: str, model_id: str) -> HttpResponse:
    try:
        model = model_for_user(
            request.user, owner_user_id=user_id, app_id=app_id, model_id=model_id
        )
    except ApiError as exc:
        raise Http404("Model does not exist") from exc
    is_owner = model.app.owner_id == request.user.pk
    if request.method == "POST":
        if not is_owner:
            raise Http404("Model does not exist")
        value = request.POST.get("capture_all_callers") == "on"
        services.model_set_capture_all_callers(app=model.app, model_id=model.public_id, value=value)
        messages.success(
            request,
            "Collectors with a blank caller now capture every caller's predictions on this model."
            if value
            else "Collectors with a blank caller now capture only your own predictions.",
        )
        return redirect(request.path)
    return render(
        request,
        "inference/model.html",
        {"model": model, "version": model.latest_version(), "is_owner": is_owner},
    )
