"""Reads of the module catalogue and of installations, scoped to the acting user."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from collectors_module.core.errors import SC, ApiError, not_found

from .models import Installation, Module

# ".../modules/<slug>" optionally followed by "/versions/<id>" or a trailing slash.
_MODULE_PATH_RE = re.compile(
    r"(?:^|/)modules/([A-Za-z0-9_-]{1,64})(?:/versions/[A-Za-z0-9_.-]+)?/?\Z"
)
_BARE_SLUG_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_MODULE_URL = 2048


def modules_catalogue():
    return Module.objects.order_by("title")


def module_by_slug(slug: str) -> Module:
    """The catalogue entry for `slug`; MODULE_DOES_NOT_EXIST if there is none."""
    module = Module.objects.filter(slug=slug).first()
    if module is None:
        raise ApiError(SC.MODULE_DOES_NOT_EXIST, f"Module '{slug[:64]}' does not exist")
    return module


def module_from_url(url: str) -> Module:
    """Resolve a pasted module URL (full URL, path, or bare slug) to a module; never fetches it.

    Raises ApiError(field="module_url") for anything that is not a known module's URL.
    """
    url = (url or "").strip()
    if not url:
        raise ApiError(SC.MODULE_INVALID_ARGUMENT, "Paste the module's URL", field="module_url")
    if len(url) > MAX_MODULE_URL or any(ch in url for ch in "\x00\r\n"):
        raise ApiError(SC.MODULE_INVALID_ARGUMENT, "That is not a module URL", field="module_url")
    slug = ""
    if _BARE_SLUG_RE.fullmatch(url):
        slug = url
    else:
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if parts is not None and parts.scheme in ("", "http", "https"):
            match = _MODULE_PATH_RE.search(parts.path)
            if match:
                slug = match.group(1)
    if not slug:
        raise ApiError(
            SC.MODULE_INVALID_ARGUMENT,
            "That is not a module URL: it should end in /modules/<module id>, "
            "e.g. the address of the Collectors module page",
            field="module_url",
        )
    module = Module.objects.filter(slug=slug).first()
    if module is None:
        raise ApiError(
            SC.MODULE_DOES_NOT_EXIST, f"No module '{slug}' in the catalogue", field="module_url"
        )
    return module


def installations_of_app(app):
    return (
        Installation.objects.filter(app=app)
        .select_related("module", "app", "app__owner", "key")
        .order_by("created_at", "pk")
    )


def installation_for_app(app, slug: str) -> Installation:
    """The installation `slug` in `app` (already scoped to the user); 11101 if missing."""
    inst = installations_of_app(app).filter(slug=slug).first()
    if inst is None:
        raise not_found("Installed module", f"{app.public_id}/{slug}")
    return inst


def installations_for_sidebar(user) -> list[Installation]:
    """Installations in the user's own apps, for the left sidebar."""
    if user is None or not user.is_authenticated:
        return []
    return list(
        Installation.objects.filter(app__owner=user)
        .select_related("module", "app")
        .order_by("app__public_id", "slug")[:50]
    )
