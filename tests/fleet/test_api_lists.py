"""The miner list's pages (``?page=`` and keyset ``?cursor=``), its ordering with miners that
have no figures, the query plan it walks, and the fleet summary against a naive count."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from fleet.api.pagination import CURSOR_SALT
from fleet.models import Miner, MinerHealth, MinerLatest
from fleet.selectors import fleet_summary
from tests.conftest import OrgWorld, api_client_for
from tests.fleet.support import make_miners

ORDERINGS = [
    "",
    "name",
    "-name",
    "-host",
    "site,-power_w",
    "hashrate_ths",
    "-hashrate_ths",
    "-max_temp_c",
    "efficiency_jth,-name",
    "-updated_at",
    "health,-hashrate_ths",
]


@pytest.fixture
def fleet(org_a: OrgWorld, org_b: OrgWorld) -> list[Miner]:
    """30 miners of org A with ties and gaps, 6 of org B (never listed for A)."""
    miners = make_miners(org_a, 30)
    make_miners(org_b, 6)
    latest = {row.miner_id: row for row in MinerLatest.objects.filter(miner__in=miners)}
    for i, miner in enumerate(miners):
        row = latest[miner.pk]
        if i % 7 == 3:  # ties on every figure
            row.hashrate_ths, row.power_w, row.efficiency_jth = 111.0, 3333.0, 30.03
        if i % 9 == 4:  # polled, never answered: no figures
            row.updated_at = row.hashrate_ths = row.power_w = row.efficiency_jth = None
            row.max_temp_c = None
    MinerLatest.objects.bulk_update(
        latest.values(),
        ["hashrate_ths", "power_w", "efficiency_jth", "max_temp_c", "updated_at"],
    )
    # never polled at all: no latest row
    MinerLatest.objects.filter(miner__in=[miners[5], miners[17]]).delete()
    return miners


def viewer(world: OrgWorld) -> APIClient:
    return api_client_for(world.users["viewer"])


def everything(client: APIClient, ordering: str) -> list[int]:
    body = client.get("/api/v1/miners/", {"ordering": ordering, "page_size": 500}).json()
    return [m["id"] for m in body["results"]]


def walk(client: APIClient, ordering: str, size: int) -> tuple[list[list[int]], list[str]]:
    """Every cursor page from the first, following ``next``: the pages' ids and the links."""
    pages: list[list[int]] = []
    links: list[str] = []
    url: str | None = "/api/v1/miners/"
    params: dict[str, Any] | None = {"ordering": ordering, "page_size": size, "cursor": ""}
    while url is not None:
        response = client.get(url, params)
        assert response.status_code == 200, response.content
        body = response.json()
        assert "count" not in body
        pages.append([m["id"] for m in body["results"]])
        links.append(url)
        url, params = body["next"], None
        assert len(pages) < 50
    return pages, links


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_cursor_pages_walk_the_same_order_as_pages_both_ways(
    fleet: list[Miner], org_a: OrgWorld, ordering: str
) -> None:
    client = viewer(org_a)
    expected = everything(client, ordering)
    assert len(expected) == 30
    pages, _links = walk(client, ordering, 7)
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
    assert [i for page in pages for i in page] == expected
    numbered = [  # page numbers past the first read their ids first (NarrowFirst): same rows
        [
            m["id"]
            for m in client.get(
                "/api/v1/miners/", {"ordering": ordering, "page_size": 7, "page": n}
            ).json()["results"]
        ]
        for n in range(1, 6)
    ]
    assert numbered == pages
    # and back from the last page, following previous
    body = client.get(_links[-1]).json()
    backwards = [[m["id"] for m in body["results"]]]
    while body["previous"]:
        body = client.get(body["previous"]).json()
        backwards.append([m["id"] for m in body["results"]])
    assert backwards[::-1] == pages


@pytest.mark.parametrize("ordering", ["hashrate_ths", "-hashrate_ths", "-updated_at"])
def test_miners_without_figures_come_last_either_way(
    fleet: list[Miner], org_a: OrgWorld, ordering: str
) -> None:
    client = viewer(org_a)
    body = client.get("/api/v1/miners/", {"ordering": ordering, "page_size": 500}).json()
    latest = [m["latest"] for m in body["results"]]
    blank = [i for i, value in enumerate(latest) if value is None]
    assert blank == list(range(len(latest) - len(blank), len(latest))) and len(blank) == 5
    field = ordering.lstrip("-")
    values = [value[field] for value in latest if value is not None]
    assert values == sorted(values, reverse=ordering.startswith("-"))
    first_cursor_page = client.get(
        "/api/v1/miners/", {"ordering": ordering, "cursor": "", "page_size": 5}
    ).json()
    assert all(m["latest"] is not None for m in first_cursor_page["results"])


def test_latest_is_null_until_polled_and_complete_after(
    fleet: list[Miner], org_a: OrgWorld
) -> None:
    results = viewer(org_a).get("/api/v1/miners/", {"page_size": 500}).json()["results"]
    by_id = {m["id"]: m["latest"] for m in results}
    assert by_id[fleet[5].pk] is None and by_id[fleet[4].pk] is None  # no row; no figures
    contract = {
        "hashrate_ths",
        "power_w",
        "efficiency_jth",
        "power_target_w",
        "temperatures",
        "fans",
        "hashboards",
        "pools",
        "state",
        "updated_at",
    }
    assert contract <= set(by_id[fleet[0].pk])


def test_inserts_between_pages_neither_repeat_nor_skip(fleet: list[Miner], org_a: OrgWorld) -> None:
    client = viewer(org_a)
    before = everything(client, "name")
    first = client.get("/api/v1/miners/", {"ordering": "name", "cursor": "", "page_size": 10})
    seen = [m["id"] for m in first.json()["results"]]
    # new miners sort before the cursor, between the pages and after them all
    added = [
        Miner.unscoped.create(
            org=org_a.org,
            site=org_a.sites[0],
            identifier=f"serial:late-{i}",
            name=name,
            host=f"10.9.9.{i}",
            port=80,
            driver="antminer",
        )
        for i, name in enumerate(["aaa-early", "rig-00012a", "zzz-late"])
    ]
    url = first.json()["next"]
    while url:
        body = client.get(url).json()
        seen.extend(m["id"] for m in body["results"])
        url = body["next"]
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in before] == before
    assert added[0].pk not in seen and {added[1].pk, added[2].pk} <= set(seen)


def _count_queries(client: APIClient, url: str, params: dict[str, Any] | None = None) -> int:
    client.get(url, params)  # the first request of a user also loads its grants
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params).status_code == 200
    return len(captured.captured_queries)


def test_query_count_is_constant_across_page_sizes_and_cursor_pages(
    fleet: list[Miner],
    org_a: OrgWorld,
    django_assert_num_queries: Callable[..., Any],
) -> None:
    client = viewer(org_a)
    paged = _count_queries(client, "/api/v1/miners/", {"page_size": 2})
    for params in ({"page_size": 30}, {"page": 3, "page_size": 5}, {"ordering": "-power_w"}):
        with django_assert_num_queries(paged):
            client.get("/api/v1/miners/", params)
    cursor = _count_queries(client, "/api/v1/miners/", {"cursor": "", "page_size": 2})
    assert cursor == paged - 1  # no COUNT
    url = client.get("/api/v1/miners/", {"cursor": "", "page_size": 4}).json()["next"]
    for _page in range(3):
        with django_assert_num_queries(cursor):
            url = client.get(url).json()["next"]
    for ordering in ("-hashrate_ths", "site,-power_w"):
        start = {"cursor": "", "page_size": 25, "ordering": ordering}
        with django_assert_num_queries(cursor):
            nxt = client.get("/api/v1/miners/", start).json()["next"]
        with django_assert_num_queries(cursor):
            client.get(nxt)


def _tampered(token: str) -> list[str]:
    payload, _sep, signature = token.rpartition(":")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    forged = signing.Signer(salt="another.salt").sign_object({"o": "name,pk", "k": ["x", 1]})
    return [f"{payload}:{flipped}", token[1:], "garbage", "x" * 2001, "é:ü", forged]


def test_a_bad_cursor_is_a_400_naming_it(fleet: list[Miner], org_a: OrgWorld) -> None:
    client = viewer(org_a)
    nxt = client.get("/api/v1/miners/", {"cursor": "", "page_size": 5}).json()["next"]
    token = parse_qs(urlsplit(nxt).query)["cursor"][0]
    for bad in _tampered(token):
        response = client.get("/api/v1/miners/", {"cursor": bad})
        assert response.status_code == 400, bad
        assert response.json() == {"cursor": ["Invalid cursor."]}
    other = client.get("/api/v1/miners/", {"cursor": token, "ordering": "-hashrate_ths"})
    assert other.status_code == 400 and "another ordering" in other.json()["cursor"][0]
    # with page too, the cursor wins (tests/test_schema_truth.py): a tampered one is still a 400
    both = client.get("/api/v1/miners/", {"cursor": token[1:], "page": 2})
    assert both.status_code == 400 and both.json() == {"cursor": ["Invalid cursor."]}
    # a well-signed key of the wrong type (made with the server's key) is still a 400
    wrong = signing.Signer(salt=CURSOR_SALT).sign_object(
        {"o": "org_id,name,pk", "k": ["not-an-id", "x", 1], "f": True}
    )
    assert client.get("/api/v1/miners/", {"cursor": wrong}).status_code == 400


def test_jobs_list_pages_by_cursor_too(org_a: OrgWorld, org_b: OrgWorld) -> None:
    from fleet.models import Job

    for world in (org_a, org_b):
        for i in range(7):
            Job.unscoped.create(org=world.org, kind="blink", actor_label=f"job {i}", total=1)
    client = viewer(org_a)
    pages = []
    body = client.get("/api/v1/jobs/", {"cursor": "", "page_size": 3}).json()
    pages.append([j["id"] for j in body["results"]])
    while body["next"]:
        body = client.get(body["next"]).json()
        pages.append([j["id"] for j in body["results"]])
    listed = [j["id"] for j in client.get("/api/v1/jobs/", {"page_size": 50}).json()["results"]]
    assert [i for page in pages for i in page] == listed and len(listed) == 7


def _scans(sql: str) -> list[dict[str, Any]]:
    """The plan's nodes, with scans by sequence and sorts priced out of reach: an ordering the
    index can't produce would still show a Sort."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
        cursor.execute("RESET enable_seqscan")
        cursor.execute("RESET enable_sort")
    nodes, todo = [], [(json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


@pytest.mark.parametrize("cursor", [None, "first", "next"])
def test_the_default_list_walks_the_org_name_id_index(
    fleet: list[Miner], org_a: OrgWorld, cursor: str | None
) -> None:
    """The page query's order is the index's: PostgreSQL can walk it (no Sort of the fleet).
    (bench.api records the plan PostgreSQL picks at 10,000 miners.)"""
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL plan")
    client = viewer(org_a)
    url, params = "/api/v1/miners/", {} if cursor is None else {"cursor": ""}
    if cursor == "next":
        url, params = client.get(url, params | {"page_size": 5}).json()["next"], {}
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params).status_code == 200
    page_sql = next(q["sql"] for q in captured.captured_queries if "LIMIT" in q["sql"])
    nodes = _scans(page_sql)
    assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes
    walked = next(n for n in nodes if n.get("Index Name") == "miner_org_name_id")
    if cursor == "next":  # the key is a range of the index, not a filter row by row
        assert "ROW(org_id" in walked["Index Cond"] and "Filter" not in walked, walked


def _naive(miners: list[Miner]) -> dict[str, Any]:
    """The totals counted one miner at a time: only the miners that report (a poll answered,
    or fewer than 3 missed: health ok, degraded or default_password, with a reading) add
    their figures; an offline or locked-out miner's last figures are stale."""
    rows = []
    for miner in miners:
        latest = MinerLatest.objects.filter(miner=miner).first()
        rows.append((miner, latest))
    read = [(m, la) for m, la in rows if la is not None and la.updated_at is not None]
    reporting = [
        la
        for m, la in read
        if m.health in ("ok", "degraded", "default_password") and la.failures < 3
    ]
    hashrate = sum(la.hashrate_ths or 0 for la in reporting)
    power = sum(la.power_w or 0 for la in reporting)
    temps = [la.max_temp_c for la in reporting if la.max_temp_c is not None]
    health: dict[str, int] = {}
    for miner, _la in rows:
        health[miner.health] = health.get(miner.health, 0) + 1
    return {
        "miners": len(rows),
        "reporting": len(reporting),
        "stale": len(read) - len(reporting),
        "hashrate_ths": round(hashrate, 3),
        "power_w": round(power, 1),
        "efficiency_jth": round(power / hashrate, 2) if hashrate else None,
        "max_temp_c": max(temps, default=None),
        "health": health,
    }


def _same(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    assert got.keys() == expected.keys() and got["health"] == expected["health"]
    figures = {k: v for k, v in expected.items() if k != "health"}
    assert {k: v for k, v in got.items() if k != "health"} == pytest.approx(figures, abs=0.01)
    return True


def test_summary_equals_a_naive_count_of_the_org_alone(
    fleet: list[Miner], org_a: OrgWorld, org_b: OrgWorld
) -> None:
    Miner.unscoped.filter(pk__in=[fleet[1].pk, fleet[2].pk]).update(health=MinerHealth.DEGRADED)
    mine = list(Miner.unscoped.filter(org=org_a.org))
    body = viewer(org_a).get("/api/v1/fleet/summary/").json()
    assert _same(body["totals"], _naive(mine))
    assert [s["site"] for s in body["sites"]] == [site.pk for site in org_a.sites]
    for site, row in zip(org_a.sites, body["sites"], strict=True):
        expected = _naive([m for m in mine if m.site_id == site.pk])
        assert _same({k: v for k, v in row.items() if k not in ("site", "name")}, expected)
        assert row["name"] == site.name
    models: dict[str, int] = {}
    for miner in mine:
        models[miner.model] = models.get(miner.model, 0) + 1
    assert {m["model"]: m["miners"] for m in body["models"]} == models
    for row in body["models"]:
        expected = _naive([m for m in mine if m.model == row["model"]])
        assert (row["reporting"], row["hashrate_ths"]) == pytest.approx(
            (expected["reporting"], expected["hashrate_ths"]), abs=0.01
        )
    theirs = viewer(org_b).get("/api/v1/fleet/summary/").json()
    assert theirs["totals"]["miners"] == 6
    assert {s["site"] for s in theirs["sites"]} == {site.pk for site in org_b.sites}


def test_summary_is_one_grouped_query_whatever_the_sites(
    fleet: list[Miner], org_a: OrgWorld, django_assert_num_queries: Callable[..., Any]
) -> None:
    with django_assert_num_queries(1):
        summary = fleet_summary(Miner.unscoped.filter(org=org_a.org))
    assert summary["totals"]["miners"] == 30 and len(summary["sites"]) == 2
    with django_assert_num_queries(1):
        empty = fleet_summary(Miner.unscoped.filter(pk=-1))
    assert empty["totals"] == {
        "miners": 0,
        "reporting": 0,
        "stale": 0,
        "hashrate_ths": 0.0,
        "power_w": 0.0,
        "efficiency_jth": None,
        "max_temp_c": None,
        "health": {},
    }


def test_offline_and_locked_out_miners_add_no_stale_figures(
    fleet: list[Miner], org_a: OrgWorld, settings: Any
) -> None:
    """An offline miner (or one refusing our login) keeps its last figures in `latest`; the
    totals, the sites and the models count only the miners that report, and `reporting` is
    what the health counts say: ok + degraded + default_password with a fresh reading."""
    mine = list(Miner.unscoped.filter(org=org_a.org).order_by("name"))
    offline = [m for m in mine if m.health == MinerHealth.OFFLINE]
    assert len(offline) == 3 and all(MinerLatest.objects.get(miner=m).hashrate_ths for m in offline)
    Miner.unscoped.filter(pk=mine[1].pk).update(health=MinerHealth.AUTH_NEEDED)
    Miner.unscoped.filter(pk__in=[mine[2].pk, mine[3].pk]).update(
        health=MinerHealth.DEFAULT_PASSWORD
    )
    # a default-password rig whose polls are refused: its health stays, its figures age
    MinerLatest.objects.filter(miner=mine[3]).update(failures=5)
    MinerLatest.objects.filter(miner=mine[6]).update(failures=2)  # missed two: still reporting
    never = {mine[i].pk for i in (4, 13, 22, 5, 17)}  # no reading (see the fixture)
    counting = [
        m for m in mine if m not in offline and m.pk not in never | {mine[1].pk, mine[3].pk}
    ]
    body = viewer(org_a).get("/api/v1/fleet/summary/").json()
    totals, health = body["totals"], body["totals"]["health"]
    assert health == {"ok": 24, "offline": 3, "auth_needed": 1, "default_password": 2}
    assert totals["reporting"] == len(counting) == 20
    assert totals["stale"] == 5 and totals["reporting"] + totals["stale"] + len(never) == 30
    assert totals["reporting"] == health["ok"] + health["default_password"] - len(never) - 1
    expected = sum(MinerLatest.objects.get(miner=m).hashrate_ths or 0 for m in counting)
    assert totals["hashrate_ths"] == pytest.approx(expected, abs=0.01)
    assert sum(s["hashrate_ths"] for s in body["sites"]) == pytest.approx(expected, abs=0.01)
    assert sum(m["hashrate_ths"] for m in body["models"]) == pytest.approx(expected, abs=0.01)
    assert sum(s["reporting"] for s in body["sites"]) == totals["reporting"]
    hottest = max(MinerLatest.objects.get(miner=m).max_temp_c or 0 for m in counting)
    assert totals["max_temp_c"] == hottest
    from django.test import Client

    settings.METRICS_TOKEN = "scrape-me-0123456789"  # the per-org gauges need it
    text = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-0123456789").content
    gauges = re.findall(
        rf'^rigwarden_fleet_hashrate_ths\{{org="{org_a.org.slug}",site="[^"]+"\}} (\S+)$',
        text.decode(),
        re.M,
    )
    assert len(gauges) == 2 and sum(map(float, gauges)) == pytest.approx(expected, abs=0.01)
