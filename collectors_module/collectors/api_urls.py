"""Collector JSON endpoints outside the Clarifai V2 surface; include under `api/` in the root urls:

path("api/", include("collectors_module.collectors.api_urls")),
"""

from django.urls import path

from . import api_views

app_name = "collectors_api"

_LONG = "v2/users/<str:user_id>/apps/<str:app_id>/collectors/<str:collector_id>/"
_SHORT = "v2/collectors/<str:collector_id>/"

urlpatterns = [
    path(_LONG + "captures", api_views.captures_view, name="captures"),
    path(_SHORT + "captures", api_views.captures_view, name="captures-short"),
    path(_LONG + "stats", api_views.stats_view, name="stats"),
    path(_SHORT + "stats", api_views.stats_view, name="stats-short"),
    path(_LONG + "limits", api_views.limits_view, name="limits"),
    path(_SHORT + "limits", api_views.limits_view, name="limits-short"),
    path(_LONG + "deactivate", api_views.deactivate_view, name="deactivate"),
    path(_SHORT + "deactivate", api_views.deactivate_view, name="deactivate-short"),
]
