"""Log in / out, the account page (plan) and the keys page (create, list, revoke)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from collectors_module.applications.selectors import apps_of_user
from collectors_module.core.errors import ApiError
from collectors_module.core.htmx import HtmxHttpRequest

from . import services, throttle
from .forms import KeyCreateForm, LoginForm, PlanForm, scope_groups
from .selectors import key_of_user, keys_of_user


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and request.method == "GET":
        return redirect(_safe_next(request) or "applications:home")
    form = LoginForm(request, data=request.POST if request.method == "POST" else None)
    status = 400 if request.method == "POST" else 200
    throttled = ""
    if request.method == "POST":
        username = request.POST.get("username", "")
        address = throttle.client_address(request.META)
        wait = throttle.login_blocked(username, address)
        if wait:
            # Checked before the password: while throttled even the right one is refused.
            form = LoginForm(request, initial={"username": username[:150]})
            throttled = (
                "Too many failed sign-ins for this account or from your address. Try again in "
                f"{throttle.wait_text(wait)}."
            )
            status = 429
        elif form.is_valid():
            login(request, form.get_user())
            return redirect(_safe_next(request) or "applications:home")
        else:
            throttle.login_failed(username, address)
    return render(
        request,
        "accounts/login.html",
        {"form": form, "next": _safe_next(request), "throttled": throttled},
        status=status,
    )


@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    """POST logs out. GET (a typed or bookmarked URL) asks first: logging out on a GET would let
    any page log a user out, and a blank 405 helps nobody."""
    if request.method == "GET":
        if not request.user.is_authenticated:
            messages.info(request, "You are not logged in.")
            return redirect("accounts:login")
        return render(request, "accounts/logout_confirm.html")
    logout(request)
    messages.info(request, "You are logged out.")
    return redirect("accounts:login")


@login_required
@require_http_methods(["GET", "POST"])
def account_view(request: HttpRequest) -> HttpResponse:
    form = PlanForm(request.POST or None, initial={"plan": request.user.plan})
    if request.method == "POST":
        if form.is_valid():
            # A demo control (no billing here): the plan decides who may use Collectors.
            services.user_set_plan(user=request.user, plan=form.cleaned_data["plan"])
            messages.success(request, "Plan changed.")
            return redirect("accounts:account")
        return render(request, "accounts/account.html", {"form": form}, status=400)
    return render(request, "accounts/account.html", {"form": form})


def _keys_context(request: HttpRequest, form: KeyCreateForm) -> dict:
    return {
        "form": form,
        "keys": keys_of_user(request.user),
        "scope_groups": scope_groups(),
        "checked_scopes": set(form["scopes"].value() or []),
    }


@login_required
@require_http_methods(["GET", "POST"])
def keys_view(request: HttpRequest) -> HttpResponse:
    apps = list(apps_of_user(request.user))
    if request.method == "GET":
        initial = {"key_type": "pat", "preset": "all"}
        if request.GET.get("app") in {a.public_id for a in apps}:
            initial.update(key_type="app", app=request.GET["app"])
        form = KeyCreateForm(apps=apps, initial=initial)
        return render(request, "accounts/keys.html", _keys_context(request, form))

    form = KeyCreateForm(request.POST, apps=apps)
    if form.is_valid():
        try:
            created = services.key_create(
                owner=request.user,
                scopes=form.cleaned_data["scopes"],
                description=form.cleaned_data["description"],
                app=form.chosen_app,
                expires_at=form.expires_at,
            )
        except ApiError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.details)
        else:
            # The secret is rendered once in this response and never stored (not even in the
            # session), so this page is not a redirect; it must not be cached either.
            response = render(request, "accounts/key_created.html", {"created": created})
            add_never_cache_headers(response)
            return response
    return render(request, "accounts/keys.html", _keys_context(request, form), status=400)


@login_required
@require_POST
def key_revoke_view(request: HtmxHttpRequest, key_id: str) -> HttpResponse:
    if key_of_user(request.user, key_id) is None:
        raise Http404("Key does not exist")
    key = services.key_revoke(owner=request.user, key_public_id=key_id)
    if request.htmx:
        return render(request, "accounts/keys.html#key-row", {"key": key})
    messages.success(request, f"Key {key.public_id} revoked.")
    return redirect("accounts:keys")
