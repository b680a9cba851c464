"""Forms for logging in, creating keys and changing the plan."""

from __future__ import annotations

from collections import OrderedDict
from datetime import timedelta

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from collectors_module.api.descriptors import all_scope_strings, get_rpc

from .models import Plan


class LoginForm(AuthenticationForm):
    """Django's authentication form with autocomplete hints for password managers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "User ID"
        self.fields["username"].widget.attrs.update({"autocomplete": "username"})
        self.fields["password"].widget.attrs.update({"autocomplete": "current-password"})


def _rpc_scopes(*names: str) -> list[str]:
    out: list[str] = []
    for name in names:
        out.extend(get_rpc(name).scopes)
    return list(dict.fromkeys(out))


def scope_presets() -> OrderedDict[str, tuple[str, list[str]]]:
    """Preset id -> (label, scopes). 'custom' means "use the checked boxes"."""
    post_inputs = _rpc_scopes("PostInputs")
    post_inputs += [s for s in ("Models:Get", "Predict") if s not in post_inputs]
    return OrderedDict(
        [
            ("all", ("All (every scope)", ["All"])),
            ("post_inputs", ("Post inputs + read models", post_inputs)),
            ("predict", ("Predict only", _rpc_scopes("PostModelOutputs"))),
            ("custom", ("Custom: the scopes checked below", [])),
        ]
    )


def scope_groups() -> list[tuple[str, list[str]]]:
    """Every scope string except `All`, grouped by resource ("Inputs" -> Inputs:Add, ...)."""
    groups: OrderedDict[str, list[str]] = OrderedDict()
    for scope in all_scope_strings():
        if scope == "All":
            continue
        groups.setdefault(scope.split(":", 1)[0], []).append(scope)
    return sorted(groups.items(), key=lambda item: item[0].lower())


EXPIRY_CHOICES = [
    ("", "Never"),
    ("7", "In 7 days"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In 1 year"),
]


class KeyCreateForm(forms.Form):
    description = forms.CharField(max_length=256, required=False)
    key_type = forms.ChoiceField(
        choices=[("pat", "Personal access token (all my apps)"), ("app", "App key (one app)")],
        initial="pat",
        widget=forms.RadioSelect,
    )
    app = forms.ChoiceField(required=False, choices=())
    preset = forms.ChoiceField(choices=(), initial="all", widget=forms.RadioSelect)
    scopes = forms.MultipleChoiceField(required=False, choices=())
    expires_in_days = forms.ChoiceField(choices=EXPIRY_CHOICES, required=False, label="Expires")

    def __init__(self, *args, apps=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.presets = scope_presets()
        self.fields["preset"].choices = [(k, label) for k, (label, _) in self.presets.items()]
        self.fields["scopes"].choices = [(s, s) for s in all_scope_strings() if s != "All"]
        self.apps = {a.public_id: a for a in apps}
        self.fields["app"].choices = [("", "— choose an app —")] + [(a, a) for a in self.apps]

    def clean(self):
        data = super().clean()
        if data.get("key_type") == "app":
            if not data.get("app"):
                self.add_error("app", "Choose the app this key is bound to.")
            elif data["app"] not in self.apps:
                self.add_error("app", "That app does not exist.")
        preset = data.get("preset")
        if preset == "custom":
            if not data.get("scopes"):
                self.add_error("scopes", "Check at least one scope, or choose a preset.")
        elif preset in self.presets:
            data["scopes"] = list(self.presets[preset][1])
        return data

    @property
    def chosen_app(self):
        if self.cleaned_data.get("key_type") == "app":
            return self.apps.get(self.cleaned_data.get("app"))
        return None

    @property
    def expires_at(self):
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=int(days)) if days else None


class PlanForm(forms.Form):
    plan = forms.ChoiceField(choices=Plan.choices, widget=forms.RadioSelect)
