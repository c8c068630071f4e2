"""The remote-commands page form: the command, its arguments as fields built from the catalog
specs, and the hosts. The specs' own ``clean`` checks each argument (so the page and the API
refuse the same values); ``remote_run`` decides the rest (host count, authorization)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from terminals import remote
from terminals.models import SshHost

ARG = "arg_"  # argument fields are prefixed so no argument name can shadow "command" or "hosts"
# the HTML form of remote.Hostname's rule (no lookahead: maxlength bounds the length)
HOSTNAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9\-]{0,62}(\.[A-Za-z0-9\-]{1,63})*"
HOSTNAME_MAX = 253


def _argument_field(name: str, spec: remote.Spec) -> forms.Field:
    common: dict[str, Any] = {
        "label": name.replace("_", " ").capitalize(),
        "help_text": spec.help,
        "required": spec.default is None,  # left empty, an optional argument takes its default
        "initial": spec.default,
    }
    if isinstance(spec, remote.Integer):
        return forms.IntegerField(min_value=spec.minimum, max_value=spec.maximum, **common)
    if isinstance(spec, remote.Choice):
        choices = [(key, f"{key} ({spec.options[key]})") for key in sorted(spec.options)]
        empty = [] if spec.default is not None else [("", "Choose…")]
        return forms.ChoiceField(choices=[*empty, *choices], **common)
    if isinstance(spec, remote.Hostname):
        widget = forms.TextInput(attrs={"pattern": HOSTNAME_PATTERN, "spellcheck": "false"})
        return forms.CharField(max_length=HOSTNAME_MAX, widget=widget, **common)
    widget = forms.TextInput(attrs={"spellcheck": "false"})
    return forms.CharField(max_length=spec.max_length, strip=False, widget=widget, **common)


class RemoteRunForm(forms.Form):
    command = forms.ChoiceField(
        choices=[(c.name, c.label) for c in remote.COMMANDS.values()], widget=forms.HiddenInput
    )
    hosts = forms.ModelMultipleChoiceField(
        queryset=SshHost.unscoped.none(),
        error_messages={
            "required": "Pick at least one host.",
            "invalid_choice": "Host %(value)s isn't one you can run commands on here.",
            "invalid_pk_value": "“%(pk)s” isn't a host id.",
        },
    )

    def __init__(self, *args: Any, hosts: QuerySet[SshHost], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        hosts_field: Any = self.fields["hosts"]
        hosts_field.queryset = hosts
        chosen = self.data.get("command") if self.is_bound else self.initial.get("command")
        self.entry: remote.Command | None = (
            remote.COMMANDS.get(chosen) if isinstance(chosen, str) else None
        )
        if self.entry is None and not self.is_bound:
            self.entry = next(iter(remote.COMMANDS.values()))
            self.initial["command"] = self.entry.name
        for name, spec in self.entry.params.items() if self.entry else ():
            self.fields[ARG + name] = _argument_field(name, spec)
        self.args: dict[str, Any] = {}

    def argument_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith(ARG)]

    def host_rows(self) -> list[tuple[SshHost, bool]]:
        """Every host offered, and whether it is ticked (kept across a re-rendered form)."""
        value = self["hosts"].value() or []
        ticked = {str(v) for v in (value if isinstance(value, list | tuple) else [value])}
        hosts_field: Any = self.fields["hosts"]
        return [(host, str(host.pk) in ticked) for host in hosts_field.queryset]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        for name, spec in self.entry.params.items() if self.entry else ():
            value = cleaned.get(ARG + name)
            if value is None or value == "":
                continue  # required ones already have their error; optional ones: the default
            try:
                spec.clean(name, value)
            except remote.ArgumentError as exc:
                self.add_error(ARG + name, exc.message)
            else:
                self.args[name] = value
        return cleaned

    def service_kwargs(self) -> dict[str, Any]:
        return {
            "hosts": list(self.cleaned_data["hosts"]),
            "command": self.cleaned_data["command"],
            "args": self.args,
        }
