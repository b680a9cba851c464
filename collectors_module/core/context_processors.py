"""Data the layout needs on every page: the user's apps and installed modules (sidebar)."""

from __future__ import annotations


def layout(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from collectors_module.applications.selectors import apps_of_user

    apps = list(apps_of_user(user))
    installs = []
    try:
        from collectors_module.modules.selectors import installations_for_sidebar

        installs = installations_for_sidebar(user)
    except ImportError:
        pass
    return {"sidebar_apps": apps, "sidebar_installations": installs}
