"""The sidebar's app list, on every page of a signed-in user."""

from __future__ import annotations

from .selectors import apps_of_user


def sidebar_apps(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    apps = list(apps_of_user(user))
    return {"sidebar_apps": apps, "sidebar_first_app": apps[0] if apps else None}
