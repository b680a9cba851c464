from django.urls import path

from . import views

app_name = "collectors"

_BASE = "apps/<str:app_id>/installed_module_versions/<slug:inst_slug>/collectors/"

urlpatterns = [
    path(_BASE, views.collector_list, name="list"),
    path(_BASE + "create/", views.create, name="create"),
    path(_BASE + "source-check/", views.source_check, name="source_check"),
    path(_BASE + "preview/", views.preview, name="preview"),
    path(_BASE + "<str:collector_id>/update/", views.update, name="update"),
    path(_BASE + "<str:collector_id>/stats/", views.collector_stats, name="stats"),
    path(_BASE + "<str:collector_id>/status/", views.collector_status, name="status"),
    path(_BASE + "<str:collector_id>/delete/", views.collector_delete, name="delete"),
]
