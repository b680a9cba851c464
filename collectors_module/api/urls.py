from django.urls import path

from . import openapi

app_name = "api"
urlpatterns: list = [
    path("openapi.json", openapi.openapi_view, name="openapi"),
]
