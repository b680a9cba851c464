from django.urls import path

from collectors_module.inputs.views import input_media_view

from . import views

app_name = "datasets"

_BASE = "apps/<str:app_id>/datasets/"

urlpatterns = [
    # The media of an input at Clarifai's hosted path (`{prefix}/orig/{suffix}`) of exports.
    path("apps/<str:app_id>/inputs/<str:input_id>/orig/media", input_media_view, name="hosted"),
    path(_BASE, views.dataset_list_view, name="list"),
    path(_BASE + "<str:dataset_id>/", views.dataset_detail_view, name="detail"),
    path(_BASE + "<str:dataset_id>/add-inputs/", views.dataset_add_inputs_view, name="add_inputs"),
    path(_BASE + "<str:dataset_id>/versions/", views.version_create_view, name="version_create"),
    path(
        _BASE + "<str:dataset_id>/versions/<str:version_id>/exports/",
        views.export_create_view,
        name="export_create",
    ),
    path(
        _BASE + "<str:dataset_id>/versions/<str:version_id>/exports/<slug:fmt>.zip",
        views.export_download_view,
        name="download",
    ),
]
