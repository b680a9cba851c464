"""Data the layout needs on every page: the user's apps and installed modules (sidebar)."""

from __future__ import annotations

import functools

from django.template import TemplateDoesNotExist
from django.template.loader import get_template

SIDEBAR_INSTALLATION_TEMPLATE = "modules/sidebar_installation.html"


@functools.cache
def _installation_template() -> str:
    """The modules UI's sidebar row template, or '' while that part is not installed."""
    try:
        get_template(SIDEBAR_INSTALLATION_TEMPLATE)
    except TemplateDoesNotExist:
        return ""
    return SIDEBAR_INSTALLATION_TEMPLATE


def layout(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from collectors_module.applications.selectors import apps_of_user

    apps = list(apps_of_user(user))
    installs = []
    try:
        from collectors_module.modules.selectors import installations_for_sidebar
    except ImportError:
        installations_for_sidebar = None
    if installations_for_sidebar is not None:
        installs = installations_for_sidebar(user)
    template = _installation_template() if installs else ""
    if not template:
        _installation_template.cache_clear()  # pick the template up once it is written
    return {
        "sidebar_apps": apps,
        "sidebar_first_app": apps[0] if apps else None,
        "sidebar_installations": installs,
        "sidebar_installation_template": template,
    }
