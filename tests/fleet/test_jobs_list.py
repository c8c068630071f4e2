"""The jobs list (/jobs/): the switcher org's jobs, newest first, paged, each linking to its
progress page; another org's jobs are never listed nor counted."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.actor import Actor
from fleet.models import Job, Miner
from fleet.services.jobs import job_create
from fleet.views.jobs import JOBS_PER_PAGE
from tests.accounts.pages.support import HTMX, assert_csp_clean, html, signed_in
from tests.conftest import ROLES, OrgWorld
from tests.fleet.support import make_miners

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")


def _jobs(org: OrgWorld, count: int, kind: str = "reboot") -> list[Job]:
    miners = make_miners(org, 3)
    return [
        job_create(actor=SYSTEM, org=org.org, kind=kind, params={}, miners=miners[: 1 + i % 3])
        for i in range(count)
    ]


def _listed(body: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-job="(\d+)">', body)]


def test_the_jobs_list_shows_the_orgs_jobs_newest_first_with_links(org_a: OrgWorld) -> None:
    made = _jobs(org_a, 3)
    made[1].failed = 1
    made[1].save(update_fields=["failed"])
    blink = job_create(
        actor=Actor.for_user(org_a.users["owner"]),
        org=org_a.org,
        kind="blink",
        params={},
        miners=list(Miner.unscoped.filter(org=org_a.org)[:1]),
    )
    response = signed_in(org_a.users["owner"]).get("/jobs/")
    assert response.status_code == 200
    assert_csp_clean(response)
    body = html(response)
    assert _listed(body) == [blink.pk, *[job.pk for job in reversed(made)]]
    for job in [*made, blink]:
        assert f'href="/jobs/{job.pk}/"' in body
    row = body.split(f'<tr data-job="{blink.pk}">')[1].split("</tr>")[0]
    assert "Blink LED × 1" in row and org_a.users["owner"].email in row
    blink.refresh_from_db()
    finished = blink.done + blink.failed  # test rows can't blink: skipped at once
    assert "Queued" in row and f"</progress> {finished} of 1" in row
    assert "1 failed" in body.split(f'<tr data-job="{made[1].pk}">')[1].split("</tr>")[0]
    assert "of 4 jobs" in body
    assert 'aria-current="page"' in body.split('href="/jobs/"')[1].split(">")[0]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_that_reads_miners_sees_the_list(role: str, org_a: OrgWorld) -> None:
    (job,) = _jobs(org_a, 1)
    response = signed_in(org_a.users[role]).get("/jobs/")
    assert response.status_code == 200, role
    assert _listed(html(response)) == [job.pk]


def test_another_orgs_jobs_are_never_listed_or_counted(org_a: OrgWorld, org_b: OrgWorld) -> None:
    mine = _jobs(org_a, 4)
    theirs = _jobs(org_b, 1)
    a_body = html(signed_in(org_a.users["owner"]).get("/jobs/"))
    assert _listed(a_body) == [job.pk for job in reversed(mine)]
    assert "of 4 jobs" in a_body and f'href="/jobs/{theirs[0].pk}/"' not in a_body
    b_body = html(signed_in(org_b.users["owner"]).get("/jobs/"))
    assert _listed(b_body) == [theirs[0].pk]
    assert "of 1 jobs" in b_body and "of 4" not in b_body and "of 5" not in b_body
    for job in mine:
        assert f'href="/jobs/{job.pk}/"' not in b_body
    # a page past the end is the last page (of org B's one job), not org A's
    assert _listed(html(signed_in(org_b.users["owner"]).get("/jobs/?page=2"))) == [theirs[0].pk]


def test_an_org_without_jobs_says_how_jobs_come_about(org_a: OrgWorld, org_b: OrgWorld) -> None:
    _jobs(org_b, 2)
    body = html(signed_in(org_a.users["owner"]).get("/jobs/"))
    assert "No jobs yet" in body and not _listed(body)
    assert 'href="/miners/"' in body


def test_the_list_pages_and_htmx_gets_the_list_alone(org_a: OrgWorld) -> None:
    made = _jobs(org_a, JOBS_PER_PAGE + 3)
    owner = signed_in(org_a.users["owner"])
    first = html(owner.get("/jobs/"))
    assert len(_listed(first)) == JOBS_PER_PAGE and _listed(first)[0] == made[-1].pk
    assert f"1–{JOBS_PER_PAGE} of {JOBS_PER_PAGE + 3} jobs" in first
    second = owner.get("/jobs/?page=2", **HTMX)
    body = html(second)
    assert _listed(body) == [job.pk for job in reversed(made[:3])]
    assert body.lstrip().startswith('<div id="job-list">') and "<html" not in body
    assert "HX-Request" in second["Vary"]


def test_anonymous_is_sent_to_sign_in() -> None:
    response = Client().get("/jobs/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
