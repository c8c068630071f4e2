"""The single-miner view page: who sees which controls, org scope, how the list opens a miner.

The page's data comes from the proxy in the browser (tests/browser/test_miner_view.py); here the
server-rendered shell: the permissions rendered into it, 404 outside the org, the list's links.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from accounts.models import Role, SiteRoleAssignment
from fleet.models import Miner, MinerHealth
from fleet.views.miner_view import FIRMWARES
from miners import EMBEDDED_VIEW_DRIVERS, ProtoOSDriver
from miners.antminer import AntminerDriver
from tests.accounts.pages.support import assert_csp_clean, html, signed_in
from tests.conftest import OrgWorld

CONFIG = re.compile(r'<script id="miner-view-config" type="application/json">(.*?)</script>', re.S)


def _miner(org: OrgWorld, driver: str, index: int = 0, **extra: Any) -> Miner:
    port = extra.pop("port", 80 if driver == "protoos" else 4028)
    return Miner.unscoped.create(
        org=org.org,
        site=org.sites[0],
        identifier=f"serial:view-{org.org.slug}-{driver}-{index}",
        name=f"{driver}-{index}",
        host=f"10.9.{index}.{1 if driver == 'protoos' else 2}",
        port=port,
        driver=driver,
        health=MinerHealth.OK,
        **extra,
    )


@pytest.fixture
def proto(org_a: OrgWorld) -> Miner:
    return _miner(org_a, "protoos")


@pytest.fixture
def antminer(org_a: OrgWorld) -> Miner:
    return _miner(org_a, "antminer", device_info={"ports": {"rpc": 4028, "web": 80}})


@pytest.fixture
def other(org_a: OrgWorld) -> Miner:
    """A miner of a driver the view can't show (the pyasic-rs adapter's brands)."""
    return _miner(org_a, "pyasic", 3, port=80, make="MicroBT", model="M30S")


def _config(body: str) -> dict[str, Any]:
    found = CONFIG.search(body)
    assert found, "the page carries its script's configuration"
    config: dict[str, Any] = json.loads(found.group(1))
    return config


def test_drivers_say_whether_the_view_can_show_them(
    proto: Miner, antminer: Miner, other: Miner
) -> None:
    assert ProtoOSDriver.embedded_view_available and AntminerDriver.embedded_view_available
    assert {"protoos", "antminer"} == EMBEDDED_VIEW_DRIVERS
    assert proto.embedded_view_available and antminer.embedded_view_available
    assert not other.embedded_view_available
    assert set(FIRMWARES) == EMBEDDED_VIEW_DRIVERS  # every driver the view shows has an adapter
    assert antminer.device_ui_url == "http://10.9.0.2/"  # the web port, not RPC 4028
    proto.port, proto.scheme = 8443, "https"
    assert proto.device_ui_url == "https://10.9.0.1:8443/"


def test_the_api_tells_a_ui_where_a_miner_opens(
    org_a: OrgWorld, proto: Miner, antminer: Miner, other: Miner
) -> None:
    client = signed_in(org_a.users["viewer"])
    rows = {m["id"]: m for m in client.get("/api/v1/miners/").json()["results"]}
    assert rows[proto.pk]["embedded_view_available"] is True
    assert rows[antminer.pk]["embedded_view_available"] is True
    assert rows[antminer.pk]["device_ui_url"] == "http://10.9.0.2/"
    assert rows[other.pk]["embedded_view_available"] is False
    assert rows[other.pk]["device_ui_url"] == "http://10.9.3.2/"


def test_the_owner_gets_every_control_and_no_token(org_a: OrgWorld, proto: Miner) -> None:
    response = signed_in(org_a.users["owner"]).get(f"/miners/{proto.pk}/view/")
    assert response.status_code == 200
    assert_csp_clean(response)
    body = html(response)
    config = _config(body)
    assert config["proxy"] == f"/api-proxy/miners/{proto.pk}/api/v1"
    assert config["pools_action"] == f"/api/v1/miners/{proto.pk}/actions/set_pools/"
    assert all(config["can"].values()), config["can"]
    assert "disabled" not in body.split('id="mv-controls"')[1].split("</section>")[0]
    assert 'data-mv-form="pools"' in body  # pools are edited through the audited action
    assert 'href="/miners/"' in body and "Back to the list" in body
    assert "token" not in json.dumps({k: v for k, v in config.items() if k != "csrf"}).lower()
    assert "static/js/miner-view.js" in body
    # nothing from another origin (a CDN); not a substring test: the CSRF token is random text
    assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', body)


def test_a_viewer_sees_the_rig_but_every_control_is_disabled_with_the_reason(
    org_a: OrgWorld, proto: Miner
) -> None:
    body = html(signed_in(org_a.users["viewer"]).get(f"/miners/{proto.pk}/view/"))
    config = _config(body)
    assert not any(config["can"].values()), config["can"]
    for key, permission in (
        ("blink", "miner:blink_led"),
        ("reboot", "miner:reboot"),
        ("start", "miner:start_mining"),
        ("stop", "miner:stop_mining"),
    ):
        button = re.search(rf'<button[^>]*data-mv-action="{key}"[^>]*>', body)
        assert button and "disabled" in button.group(0), key
        why = re.search(rf'<p class="muted small why" id="why-mv-{key}">([^<]*)</p>', body)
        assert why and permission in why.group(1), key
    assert re.search(r'<input[^>]*id="mv-watts"[^>]*disabled', body)
    assert "miner:set_power_target" in body and "miner:download_logs" in body
    assert 'data-mv-form="pools"' not in body  # no form without the right to use it
    assert "Editing pools isn't available" in body and "miner:update_pools" in body


def test_a_field_tech_may_blink_and_read_logs_only(org_a: OrgWorld, proto: Miner) -> None:
    config = _config(html(signed_in(org_a.users["field_tech"]).get(f"/miners/{proto.pk}/view/")))
    allowed = {key for key, can in config["can"].items() if can}
    assert allowed == {"blink", "logs"}


def test_a_site_role_counts_only_at_its_site(org_a: OrgWorld) -> None:
    """An org viewer who operates site 2: controls there, none at site 1."""
    here, there = _miner(org_a, "protoos", 0), _miner(org_a, "protoos", 1)
    there.site = org_a.sites[1]
    there.save(update_fields=["site"])
    viewer = org_a.users["viewer"]
    operator = Role.unscoped.get(slug="operator", org__isnull=True)
    SiteRoleAssignment.unscoped.create(user=viewer, site=org_a.sites[1], role=operator)
    client = signed_in(viewer)
    assert not any(_config(html(client.get(f"/miners/{here.pk}/view/")))["can"].values())
    config = _config(html(client.get(f"/miners/{there.pk}/view/")))
    assert config["can"]["reboot"] and config["can"]["power_target"] and config["can"]["pools"]


def test_another_orgs_miner_is_404_and_nothing_leaks(
    org_a: OrgWorld, org_b: OrgWorld, proto: Miner
) -> None:
    for role in ("owner", "viewer"):
        response = signed_in(org_b.users[role]).get(f"/miners/{proto.pk}/view/")
        assert response.status_code == 404, role
        body = html(response)
        assert proto.name not in body and proto.host not in body
    assert signed_in(org_b.users["owner"]).get("/miners/999999/view/").status_code == 404


def test_anonymous_is_sent_to_sign_in(client: Any, proto: Miner) -> None:
    response = client.get(f"/miners/{proto.pk}/view/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_driver_without_the_view_points_to_the_device_ui(org_a: OrgWorld, other: Miner) -> None:
    response = signed_in(org_a.users["viewer"]).get(f"/miners/{other.pk}/view/")
    assert response.status_code == 200
    body = html(response)
    assert "miner-view-config" not in body and "miner-view.js" not in body
    link = re.search(r'<a class="btn btn-primary" href="([^"]+)"([^>]*)>Open device UI', body)
    assert link and link.group(1) == "http://10.9.3.2/"
    assert 'target="_blank"' in link.group(2) and "noopener" in link.group(2)


def test_the_list_and_the_miner_page_open_a_miner_by_its_driver(
    org_a: OrgWorld, proto: Miner, antminer: Miner, other: Miner
) -> None:
    client = signed_in(org_a.users["viewer"])
    listing = html(client.get("/miners/"))
    rows = dict(re.findall(r'<tr data-live-miner="(\d+)">(.*?)</tr>', listing, re.S))
    for shown in (proto, antminer):
        live = re.search(r'<a[^>]*data-open-view="live"[^>]*>', rows[str(shown.pk)])
        assert live and f'href="/miners/{shown.pk}/view/"' in live.group(0), shown.driver
        assert 'data-open-view="device"' not in rows[str(shown.pk)]
    device = re.search(r'<a[^>]*data-open-view="device"[^>]*>', rows[str(other.pk)])
    assert device and 'href="http://10.9.3.2/"' in device.group(0)
    assert 'target="_blank"' in device.group(0) and 'rel="noopener' in device.group(0)
    assert "/view/" not in rows[str(other.pk)]
    detail = html(client.get(f"/miners/{antminer.pk}/"))
    assert f'href="/miners/{antminer.pk}/view/"' in detail
    detail = html(client.get(f"/miners/{other.pk}/"))
    assert 'data-open-view="device"' in detail and "/view/" not in detail


# --- stock Antminer: the same page, the CGI adapter ------------------------------------


def test_an_antminer_opens_with_the_cgi_adapter_and_its_own_sections(
    org_a: OrgWorld, antminer: Miner
) -> None:
    response = signed_in(org_a.users["owner"]).get(f"/miners/{antminer.pk}/view/")
    assert response.status_code == 200
    assert_csp_clean(response)
    body = html(response)
    config = _config(body)
    assert config["driver"] == "antminer"
    assert config["proxy"] == f"/api-proxy/miners/{antminer.pk}/cgi-bin"
    assert all(config["can"].values()), config["can"]
    # writes its one config body carries, and reboot, go through the audited actions
    for kind in ("set_power_target", "set_cooling", "reboot", "start_mining", "stop_mining"):
        assert config["actions"][kind] == f"/api/v1/miners/{antminer.pk}/actions/{kind}/"
    assert "token" not in json.dumps({k: v for k, v in config.items() if k != "csrf"}).lower()
    # no watt-level target and no PSU on stock firmware: said so, no dead control
    assert 'id="mv-watts"' not in body
    assert 'data-mv-missing="watts"' in body and "work mode" in body
    assert 'data-mv-missing="psus"' in body and "data-mv-psus" not in body
    modes = re.findall(
        r'<option value="([a-z_]+)">', body.split('id="mv-mode"')[1].split("</select>")[0]
    )
    assert modes == ["maximum_hashrate", "efficiency"]  # the set_power_target action's modes
    sources = body.split('id="mv-log-source"')[1].split("</select>")[0]
    assert re.findall(r'<option value="([a-z_]+)"', sources) == ["kernel"]
    assert "static/js/miner-view.js" in body and "Open device UI" not in body


def test_an_antminer_shows_the_fleets_power_figures_labelled(
    org_a: OrgWorld, antminer: Miner, proto: Miner
) -> None:
    """The web CGI has no power figure; the fleet's poll (CGMiner RPC) has: the same figures as
    the list and the miner page, said where they come from, refreshed from the miner API."""
    from django.utils import timezone

    from fleet.models import MinerLatest

    now = timezone.now()
    MinerLatest.objects.create(
        miner=antminer, power_w=3030.0, efficiency_jth=21.3, updated_at=now, full_at=now
    )
    owner = signed_in(org_a.users["owner"])
    body = html(owner.get(f"/miners/{antminer.pk}/view/"))
    assert _config(body)["fleet_miner"] == f"/api/v1/miners/{antminer.pk}/"
    assert re.search(r'data-mv="power">3\.03 kW<', body)
    assert re.search(r'data-mv="efficiency">21\.3 J/TH<', body)
    assert "CGMiner RPC" in body and "Not reported by stock firmware" not in body
    listed = html(owner.get("/miners/"))
    assert "3.03 kW" in listed and "21.3 J/TH" in listed  # the list says the same
    # a firmware that reports its own power reads it from the rig, not the fleet
    assert _config(html(owner.get(f"/miners/{proto.pk}/view/")))["fleet_miner"] is None


def test_an_antminer_viewer_sees_it_but_every_control_is_disabled_with_the_reason(
    org_a: OrgWorld, antminer: Miner
) -> None:
    body = html(signed_in(org_a.users["viewer"]).get(f"/miners/{antminer.pk}/view/"))
    assert not any(_config(body)["can"].values())
    for key, permission in (("blink", "miner:blink_led"), ("reboot", "miner:reboot")):
        button = re.search(rf'<button[^>]*data-mv-action="{key}"[^>]*>', body)
        assert button and "disabled" in button.group(0), key
        why = re.search(rf'<p class="muted small why" id="why-mv-{key}">([^<]*)</p>', body)
        assert why and permission in why.group(1), key
    assert re.search(r'<select[^>]*id="mv-mode"[^>]*disabled', body)
    assert 'data-mv-form="pools"' not in body
    field_tech = signed_in(org_a.users["field_tech"]).get(f"/miners/{antminer.pk}/view/")
    allowed = {key for key, can in _config(html(field_tech))["can"].items() if can}
    assert allowed == {"blink", "logs"}


def test_another_orgs_antminer_is_404_and_nothing_leaks(
    org_a: OrgWorld, org_b: OrgWorld, antminer: Miner
) -> None:
    response = signed_in(org_b.users["owner"]).get(f"/miners/{antminer.pk}/view/")
    assert response.status_code == 404
    assert antminer.name not in html(response) and antminer.host not in html(response)


def test_a_node_owned_miner_uses_the_same_proxy_url(org_a: OrgWorld, proto: Miner) -> None:
    """The page never dials the rig itself: behind a node it reads the same proxy path."""
    from fleet.models import FleetNode

    node = FleetNode.unscoped.create(org=org_a.org, site=org_a.sites[0], name="barn-node")
    proto.node = node
    proto.managed_by = node.managed_by
    proto.save(update_fields=["node", "managed_by"])
    body = html(signed_in(org_a.users["owner"]).get(f"/miners/{proto.pk}/view/"))
    assert _config(body)["proxy"] == f"/api-proxy/miners/{proto.pk}/api/v1"
    assert "through fleet node barn-node" in body


def test_a_node_owned_antminer_uses_the_same_proxy_url(org_a: OrgWorld, antminer: Miner) -> None:
    from fleet.models import FleetNode

    node = FleetNode.unscoped.create(org=org_a.org, site=org_a.sites[0], name="shed-node")
    antminer.node = node
    antminer.managed_by = node.managed_by
    antminer.save(update_fields=["node", "managed_by"])
    body = html(signed_in(org_a.users["owner"]).get(f"/miners/{antminer.pk}/view/"))
    assert _config(body)["proxy"] == f"/api-proxy/miners/{antminer.pk}/cgi-bin"
    assert "through fleet node shed-node" in body
