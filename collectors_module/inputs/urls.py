from django.urls import path

from . import views

app_name = "inputs"
urlpatterns = [
    path("apps/<str:app_id>/inputs/<str:input_id>/", views.input_detail_view, name="detail"),
    path("apps/<str:app_id>/inputs/<str:input_id>/media", views.input_media_view, name="media"),
]
