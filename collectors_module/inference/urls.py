from django.urls import path

from . import views

app_name = "inference"
urlpatterns = [
    path(
        "users/<str:user_id>/apps/<str:app_id>/models/<str:model_id>/",
        views.model_view,
        name="model",
    ),
]
