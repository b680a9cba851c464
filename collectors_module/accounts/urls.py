from django.urls import path

from . import grant_views, views

app_name = "accounts"
urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("account/", views.account_view, name="account"),
    path("keys/", views.keys_view, name="keys"),
    path("keys/<str:key_id>/revoke/", views.key_revoke_view, name="key_revoke"),
    path("capture-grants/", grant_views.capture_grants_view, name="capture_grants"),
    path(
        "capture-grants/<str:grantee_user_id>/revoke/",
        grant_views.capture_grant_revoke_view,
        name="capture_grant_revoke",
    ),
]
