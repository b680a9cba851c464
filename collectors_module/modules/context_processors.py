"""The sidebar's installed modules, on every page of a signed-in user."""

from __future__ import annotations

from .selectors import installations_for_sidebar


def sidebar_installations(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"sidebar_installations": installations_for_sidebar(user)}
