"""Password change and reset, and logging out on every device (Django's auth views with our
templates; the reset email goes through EMAIL_BACKEND, the console in the quick start)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from . import services

password_change = auth_views.PasswordChangeView.as_view(
    template_name="accounts/password_change.html",
    success_url=reverse_lazy("accounts:password_change_done"),
)
password_change_done = auth_views.PasswordChangeDoneView.as_view(
    template_name="accounts/password_message.html",
    extra_context={
        "title": "Password changed",
        "message": "Your password was changed. Sessions on your other devices have ended.",
    },
)
password_reset = auth_views.PasswordResetView.as_view(
    template_name="accounts/password_reset.html",
    email_template_name="accounts/password_reset_email.txt",
    subject_template_name="accounts/password_reset_subject.txt",
    success_url=reverse_lazy("accounts:password_reset_done"),
)
password_reset_done = auth_views.PasswordResetDoneView.as_view(
    template_name="accounts/password_message.html",
    extra_context={
        "title": "Check your email",
        "message": "If an account has that address, a link to choose a new password is on its way.",
    },
)
password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    template_name="accounts/password_reset_confirm.html",
    success_url=reverse_lazy("accounts:password_reset_complete"),
)
password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="accounts/password_message.html",
    extra_context={"title": "Password set", "message": "Your new password is set: log in."},
)


@login_required
@require_POST
def logout_everywhere_view(request: HttpRequest) -> HttpResponse:
    services.user_logout_everywhere(user=request.user)
    logout(request)
    messages.info(request, "You are logged out on every device.")
    return redirect("accounts:login")
