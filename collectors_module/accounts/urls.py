from django.urls import path

from . import grant_views, password_views, views

app_name = "accounts"
urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("account/", views.account_view, name="account"),
    path("keys/", views.keys_view, name="keys"),
    path("keys/<str:key_id>/revoke/", views.key_revoke_view, name="key_revoke"),
    path("capture-grants/", grant_views.capture_grants_view, name="capture_grants"),
    path("password/", password_views.password_change, name="password_change"),
    path("password/done/", password_views.password_change_done, name="password_change_done"),
    path("password/reset/", password_views.password_reset, name="password_reset"),
    path("password/reset/sent/", password_views.password_reset_done, name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        password_views.password_reset_confirm,
        name="password_reset_confirm",
    ),
    path(
        "password/reset/complete/",
        password_views.password_reset_complete,
        name="password_reset_complete",
    ),
    path("logout-everywhere/", password_views.logout_everywhere_view, name="logout_everywhere"),
    path(
        "capture-grants/<str:grantee_user_id>/revoke/",
        grant_views.capture_grant_revoke_view,
        name="capture_grant_revoke",
    ),
]
