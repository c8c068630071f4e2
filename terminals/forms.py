"""Page forms. They check shapes only; the services decide (a refusal or an
``ApplicationError`` lands back on the form through ``add_service_errors``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from accounts.models import Site
from terminals.models import AuthMethod, SshHost

SECRET_MAX = 16_384


class HostForm(forms.Form):
    site = forms.ModelChoiceField(queryset=Site.unscoped.none(), empty_label=None)
    name = forms.CharField(max_length=120)
    address = forms.GenericIPAddressField(label="IP address")
    port = forms.IntegerField(min_value=1, max_value=65535, initial=22)
    username = forms.CharField(max_length=64, initial="root")
    auth_method = forms.ChoiceField(
        choices=AuthMethod.choices, label="Sign in with", widget=forms.RadioSelect
    )
    secret = forms.CharField(
        max_length=SECRET_MAX,
        strip=False,
        label="Password or private key",
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
        help_text="Stored encrypted and never shown again. A key must be unencrypted "
        "(OpenSSH or PEM).",
    )
    jump_host = forms.ModelChoiceField(
        queryset=SshHost.unscoped.none(),
        required=False,
        empty_label="None (connect directly)",
        help_text="Reach this host through another one (like ssh -J).",
    )

    def __init__(
        self, *args: Any, sites: QuerySet[Site], hosts: QuerySet[SshHost], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        site_field: Any = self.fields["site"]
        site_field.queryset = sites
        jump_field: Any = self.fields["jump_host"]
        jump_field.queryset = hosts.filter(jump_host__isnull=True)
        self.fields["auth_method"].initial = AuthMethod.PASSWORD

    def service_kwargs(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


class PolicyForm(forms.Form):
    record_sessions = forms.BooleanField(required=False, label="Record sessions")
    record_input = forms.BooleanField(
        required=False,
        label="Record keystrokes too",
        help_text="Off by default: keystrokes can include passwords typed at prompts.",
    )
    retention_days = forms.IntegerField(min_value=1, max_value=3650, label="Keep recordings (days)")
