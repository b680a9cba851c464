"""Form for creating an app from the web UI."""

from __future__ import annotations

from django import forms


class AppCreateForm(forms.Form):
    app_id = forms.CharField(
        label="App ID",
        max_length=128,
        help_text="Letters, digits, '_', '-' or '.', starting with a letter or digit.",
    )
    description = forms.CharField(max_length=512, required=False)
