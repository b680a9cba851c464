from django.urls import path

from . import views

app_name = "modules"
urlpatterns = [
    path("modules/", views.catalogue, name="catalogue"),
    path("modules/<slug:slug>/", views.module_detail, name="detail"),
    path("modules/<slug:slug>/install/", views.install, name="install"),
    path("apps/<str:app_id>/modules/manage/", views.manage, name="manage"),
    path(
        "apps/<str:app_id>/installed_module_versions/<slug:inst_slug>/",
        views.use,
        name="use",
    ),
    path(
        "apps/<str:app_id>/installed_module_versions/<slug:inst_slug>/installed/",
        views.installed,
        name="installed",
    ),
    path(
        "apps/<str:app_id>/installed_module_versions/<slug:inst_slug>/authorize/",
        views.authorize,
        name="authorize",
    ),
    path(
        "apps/<str:app_id>/installed_module_versions/<slug:inst_slug>/uninstall/",
        views.uninstall,
        name="uninstall",
    ),
]
