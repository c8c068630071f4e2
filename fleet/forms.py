"""Fleet page forms: they check the shape of the input; the rules live in the services, whose
``ApplicationError`` lands back on the form through ``add_service_errors``.

The action forms name their fields as the action cleaners name their errors (``watts``,
``pools.0.url``), so a refused parameter is shown next to the field it concerns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from django import forms
from django.db.models import QuerySet

from accounts.models import Site
from miners import Capability, CoolingMode, PowerMode

# --- Miners -----------------------------------------------------------------------------------


class MinerAddForm(forms.Form):
    site = forms.ModelChoiceField(queryset=Site.unscoped.none(), empty_label=None)
    host = forms.GenericIPAddressField(
        label="IP address",
        widget=forms.TextInput(attrs={"placeholder": "e.g. 10.0.4.17", "autocomplete": "off"}),
    )
    port = forms.IntegerField(
        min_value=1,
        max_value=65535,
        required=False,
        label="Port (optional)",
        help_text="Leave empty to try the driver's usual ports.",
    )
    driver = forms.ChoiceField(required=False, label="Driver")
    name = forms.CharField(
        max_length=120,
        required=False,
        label="Name (optional)",
        help_text="Defaults to the hostname the miner reports.",
    )
    username = forms.CharField(max_length=120, required=False, label="Username (optional)")
    password = forms.CharField(
        max_length=256,
        required=False,
        strip=False,
        label="Password (optional)",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Empty: the factory login.",
    )

    def __init__(
        self, *args: Any, sites: QuerySet[Site], drivers: Iterable[str], **kwargs: Any
    ) -> None:
        # its own ids: the list's filter form, on the same page, has a "site" too
        kwargs.setdefault("auto_id", "add-miner-%s")
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites  # type: ignore[attr-defined]
        self.fields["driver"].choices = [("", "Detect automatically")] + [  # type: ignore[attr-defined]
            (name, name) for name in drivers
        ]

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "site": data["site"],
            "host": data["host"],
            "port": data["port"],
            "driver": data["driver"] or None,
            "name": data["name"],
            "username": data["username"],
            "password": data["password"] or None,
        }


class MinerEditForm(forms.Form):
    name = forms.CharField(max_length=120)
    tags = forms.CharField(
        max_length=900, required=False, help_text="Comma-separated, e.g. immersion, row-3."
    )
    rack = forms.CharField(max_length=60, required=False)
    position = forms.CharField(max_length=60, required=False)

    def clean_tags(self) -> list[str]:
        return [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]


class MinerMoveForm(forms.Form):
    site = forms.ModelChoiceField(
        queryset=Site.unscoped.none(), empty_label=None, label="Move to site"
    )

    def __init__(self, *args: Any, sites: QuerySet[Site], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites  # type: ignore[attr-defined]


class CredentialsForm(forms.Form):
    username = forms.CharField(max_length=120, required=False)
    password = forms.CharField(
        max_length=256,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="The login the server uses; the miner's own password is not changed.",
    )


def prepare_miner_filter_form(
    form: forms.Form, sites: QuerySet[Site], models: list[str], firmwares: list[str]
) -> None:
    """Narrow the shared MinerFilter's form for the page: this org's sites, the models and
    firmwares its miners report, "Any" as the empty choice."""
    form.fields["site"].queryset = sites  # type: ignore[attr-defined]
    form.fields["site"].empty_label = "All sites"  # type: ignore[attr-defined]
    health = form.fields["health"]
    health.empty_label = "Any health"  # type: ignore[attr-defined]
    health.choices = [c for c in health.choices if c[0] != ""]  # type: ignore[attr-defined]
    for name, values, anything in (
        ("model", models, "Any model"),
        ("firmware", firmwares, "Any firmware"),
    ):
        form.fields[name].widget = forms.Select(
            choices=[("", anything), *((value, value) for value in values)]
        )
    form.fields["search"].widget.attrs |= {
        "placeholder": "Name, IP, serial or MAC",
        "type": "search",
    }
    form.fields["search"].label = "Search"


# --- Actions ----------------------------------------------------------------------------------


class ActionForm(forms.Form):
    """An action without parameters; subclasses add fields and build ``params``."""

    confirm: ClassVar[str] = ""
    inline: ClassVar[bool] = False  # its few fields sit next to the button, not in a panel
    help: ClassVar[str] = ""  # under the fields

    def params(self) -> dict[str, Any]:
        return {}

    def fit(self, capabilities: set[str]) -> None:
        """Disable the fields one miner can't use (its page; a bulk job skips such miners)."""


class RebootForm(ActionForm):
    confirm = "Reboot {what}? Hashing stops for a few minutes."


class StopForm(ActionForm):
    confirm = "Stop mining on {what}? It stays stopped until someone starts it."


class BlinkForm(ActionForm):
    inline = True
    seconds = forms.IntegerField(required=False, initial=60, label="Seconds")

    def params(self) -> dict[str, Any]:
        return {"on": True, "seconds": self.cleaned_data.get("seconds")}


class PowerTargetForm(ActionForm):
    watts = forms.IntegerField(required=False, label="Watts", help_text="Or pick a mode.")
    mode = forms.ChoiceField(
        required=False,
        choices=[
            ("", "—"),
            (PowerMode.MAXIMUM_HASHRATE.value, "Maximum hashrate"),
            (PowerMode.EFFICIENCY.value, "Efficiency"),
        ],
    )

    def fit(self, capabilities: set[str]) -> None:
        for name, capability, instead in (
            ("watts", Capability.POWER_TARGET_WATTS, "pick a mode instead"),
            ("mode", Capability.POWER_MODE, "give watts instead"),
        ):
            if capability not in capabilities:
                self.fields[name].disabled = True
                self.fields[name].help_text = f"Not on this miner: {instead}."

    def params(self) -> dict[str, Any]:
        watts, mode = self.cleaned_data.get("watts"), self.cleaned_data.get("mode")
        return {
            **({"watts": watts} if watts is not None else {}),
            **({"mode": mode} if mode else {}),
        }


POOL_SLOTS = 3


class PoolsForm(ActionForm):
    """Up to three pools, primary first; the worker may use placeholders per miner."""

    confirm = "Point {what} at these pools? Hashrate goes where they say."
    help = (
        "Workers are filled in per miner: {site} {name} {serial} {mac} {host} {rack} {position}. "
        "Empty URLs are left out; the first pool is the primary."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for i in range(POOL_SLOTS):
            label = "Primary pool" if i == 0 else f"Backup pool {i}"
            self.fields[f"pools.{i}.url"] = forms.CharField(
                max_length=300,
                required=False,
                label=f"{label} URL",
                widget=forms.TextInput(attrs={"placeholder": "stratum+tcp://pool.example:3333"}),
            )
            self.fields[f"pools.{i}.user"] = forms.CharField(
                max_length=200,
                required=False,
                label="Worker",
                initial="{site}.{name}",
            )
            # masked, and never offered to the browser's password manager (a pool's, not ours)
            self.fields[f"pools.{i}.password"] = forms.CharField(
                max_length=200,
                required=False,
                strip=False,
                label="Password",
                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
            )

    def slots(self) -> list[list[forms.BoundField]]:
        return [
            [self[f"pools.{i}.{part}"] for part in ("url", "user", "password")]
            for i in range(POOL_SLOTS)
        ]

    def params(self) -> dict[str, Any]:
        data = self.cleaned_data
        pools = [
            {
                "url": data.get(f"pools.{i}.url", ""),
                "user": data.get(f"pools.{i}.user", ""),
                "password": data.get(f"pools.{i}.password", ""),
            }
            for i in range(POOL_SLOTS)
            if data.get(f"pools.{i}.url")
        ]
        return {"pools": pools}


class CoolingForm(ActionForm):
    mode = forms.ChoiceField(choices=[(m.value, m.value.capitalize()) for m in CoolingMode])
    speed_percent = forms.IntegerField(required=False, label="Fan speed (%)")
    target_temp_c = forms.IntegerField(required=False, label="Target temperature (°C)")

    def params(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "mode": data["mode"],
            "speed_percent": data.get("speed_percent"),
            "target_temp_c": data.get("target_temp_c"),
        }


# kind → (label, form): the order is the order of the controls
ACTION_FORMS: dict[str, tuple[str, type[ActionForm]]] = {
    "blink": ("Blink LED", BlinkForm),
    "reboot": ("Reboot", RebootForm),
    "start_mining": ("Start mining", ActionForm),
    "stop_mining": ("Stop mining", StopForm),
    "set_power_target": ("Power target", PowerTargetForm),
    "set_pools": ("Pools", PoolsForm),
    "set_cooling": ("Cooling", CoolingForm),
}


def action_form(kind: str, data: Any = None) -> ActionForm:
    """The form of ``kind``, its fields prefixed with the kind (one HTML form holds several)."""
    return ACTION_FORMS[kind][1](data, prefix=kind)


def action_label(kind: str) -> str:
    return ACTION_FORMS[kind][0] if kind in ACTION_FORMS else kind.replace("_", " ").capitalize()
