from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("account/", views.account_view, name="account"),
    path("keys/", views.keys_view, name="keys"),
    path("keys/<str:key_id>/revoke/", views.key_revoke_view, name="key_revoke"),
]
