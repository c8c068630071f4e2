"""Page forms: they check the shape of the input; the rules live in the services, whose
``ApplicationError`` lands back on the form through ``add_service_errors``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from accounts.errors import ApplicationError, Forbidden
from accounts.models import Organization, Role, Site
from accounts.permissions import CATALOG


def add_service_errors(form: forms.Form, exc: ApplicationError | Forbidden) -> None:
    errors = exc.errors if isinstance(exc, ApplicationError) else {None: [exc.message]}
    for field, messages in errors.items():
        form.add_error(field if field in form.fields else None, list(messages))


class InviteForm(forms.Form):
    email = forms.EmailField(
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "off", "placeholder": "name@example.com"}),
    )
    full_name = forms.CharField(max_length=150, required=False, label="Name (optional)")
    role = forms.ModelChoiceField(queryset=Role.unscoped.none(), empty_label=None)

    def __init__(self, *args: Any, roles: QuerySet[Role], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = roles  # type: ignore[attr-defined]
        if not self.is_bound:
            self.initial.setdefault("role", roles.filter(slug="viewer", org__isnull=True).first())


class MemberRoleForm(forms.Form):
    role = forms.ModelChoiceField(queryset=Role.unscoped.none())

    def __init__(self, *args: Any, roles: QuerySet[Role], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = roles  # type: ignore[attr-defined]


class SiteRoleForm(forms.Form):
    site = forms.ModelChoiceField(
        queryset=Site.unscoped.none(),
        empty_label="Site…",
        error_messages={"required": "Choose the site that gets its own role."},
    )
    role = forms.ModelChoiceField(
        queryset=Role.unscoped.none(),
        empty_label="Role…",
        error_messages={"required": "Choose the role this member gets at that site."},
    )

    def __init__(
        self, *args: Any, sites: QuerySet[Site], roles: QuerySet[Role], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites  # type: ignore[attr-defined]
        self.fields["role"].queryset = roles  # type: ignore[attr-defined]


class RoleCreateForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Shift leads"}),
        error_messages={"required": "Give the role a name."},
    )
    description = forms.CharField(max_length=300, required=False)
    copy_from = forms.ModelChoiceField(
        queryset=Role.unscoped.none(),
        required=False,
        empty_label="No permissions",
        label="Start from",
    )

    def __init__(self, *args: Any, roles: QuerySet[Role], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["copy_from"].queryset = roles  # type: ignore[attr-defined]

    def permissions(self) -> list[str]:
        role = self.cleaned_data.get("copy_from")
        return list(role.permissions) if role is not None else []


class RoleEditForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        error_messages={
            "required": "This field is required: a role needs a name, so the old one was kept."
        },
    )
    description = forms.CharField(max_length=300, required=False)
    permissions = forms.MultipleChoiceField(choices=list(CATALOG.items()), required=False)


class SiteForm(forms.Form):
    name = forms.CharField(
        max_length=120,
        widget=forms.TextInput(attrs={"placeholder": "e.g. North Hall"}),
        error_messages={"required": "Give the site a name."},
    )
    location = forms.CharField(
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Rack rows A–F"}),
    )


class TokenForm(forms.Form):
    EXPIRY_CHOICES = [
        ("", "Never"),
        ("7", "In 7 days"),
        ("30", "In 30 days"),
        ("90", "In 90 days"),
        ("365", "In a year"),
    ]

    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. grafana-exporter"})
    )
    org = forms.ModelChoiceField(
        queryset=Organization.unscoped.none(),
        label="Organization",
        empty_label=None,
        help_text="A token acts in this organization only.",
    )
    expires_in = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES, coerce=int, empty_value=None, required=False, label="Expires"
    )

    def __init__(self, *args: Any, orgs: QuerySet[Organization], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["org"].queryset = orgs  # type: ignore[attr-defined]
        self.single_org = orgs.count() == 1
        if self.single_org:
            self.fields["org"].widget = forms.HiddenInput()
            self.initial.setdefault("org", orgs.first())

    def expires_at(self) -> datetime | None:
        days = self.cleaned_data.get("expires_in")
        return timezone.now() + timedelta(days=days) if days else None


class AcceptInvitationForm(forms.Form):
    """A new address accepting an invitation: its name and password."""

    full_name = forms.CharField(max_length=150, required=False, label="Your name")
    password1 = forms.CharField(
        label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="Password (again)",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data


def prepare_activity_filter_form(form: forms.Form, sites: QuerySet[Site]) -> None:
    """Narrow the shared ActivityFilter's form for the page: only the caller's sites, date pickers."""
    form.fields["site"].queryset = sites  # type: ignore[attr-defined]
    form.fields["site"].empty_label = "All sites"  # type: ignore[attr-defined]
    for name in ("actor_type", "result"):
        field = form.fields[name]
        field.empty_label = "Any"  # type: ignore[attr-defined]
        field.choices = [choice for choice in field.choices if choice[0] != ""]  # type: ignore[attr-defined]
    for name in ("since", "until"):
        form.fields[name].widget.input_type = "datetime-local"
    for name, label in (
        ("actor_type", "Actor type"),
        ("result", "Result"),
        ("since", "From"),
        ("until", "Until"),
    ):
        form.fields[name].label = label
