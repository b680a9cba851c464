from django.urls import path

from . import views

app_name = "applications"
urlpatterns = [
    path("", views.home_view, name="home"),
    # Not under apps/ so that no app id can shadow it.
    path("new-app/", views.app_create_view, name="create"),
    path("apps/<str:app_id>/", views.app_detail_view, name="detail"),
]
