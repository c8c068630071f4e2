"""Writes to an org's SSO settings: claim → role rules and the seat limit."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.authz import authorize
from accounts.errors import ApplicationError
from accounts.models import Organization, Role, Site, SsoRoleMapping, SsoSeatLimit
from accounts.services.activity import activity_record, records_refusals
from accounts.services.members import check_role_grantable

# dotted names of claims; URL-like claim names (Auth0's namespaced claims) are allowed too
CLAIM_PATH = re.compile(r"^[A-Za-z0-9_:/.\-]{1,200}$")
MAX_PRIORITY = 10_000


def _clean(claim: str, value: str, priority: int) -> tuple[str, str]:
    claim, value = (claim or "").strip(), (value or "").strip()
    if not CLAIM_PATH.match(claim) or ".." in claim or claim.startswith("."):
        raise ApplicationError(
            "A claim name or dotted path, e.g. groups or realm_access.roles.", field="claim"
        )
    if not value or len(value) > 200:
        raise ApplicationError("The claim value to match (1–200 characters).", field="value")
    if not 0 <= priority <= MAX_PRIORITY:
        raise ApplicationError(f"A number from 0 to {MAX_PRIORITY}.", field="priority")
    return claim, value


@records_refusals("sso_mapping.create")
@transaction.atomic
def sso_mapping_create(
    *,
    actor: Actor,
    org: Organization,
    claim: str,
    value: str,
    role: Role,
    site: Site | None = None,
    priority: int = 100,
) -> SsoRoleMapping:
    authorize(actor, "user:manage", org.pk)
    claim, value = _clean(claim, value, priority)
    if site is not None and site.org_id != org.pk:
        raise ApplicationError("That site belongs to another organization.", field="site")
    check_role_grantable(actor, role, org.pk, site.pk if site is not None else None)
    try:
        with transaction.atomic():
            mapping = SsoRoleMapping.unscoped.create(
                org=org, claim=claim, value=value, role=role, site=site, priority=priority
            )
    except IntegrityError as exc:
        raise ApplicationError(
            "There is already a rule for this claim value"
            + (" at this site." if site is not None else " (org-wide)."),
            field="value",
        ) from exc
    activity_record(
        actor=actor,
        verb="sso_mapping.create",
        org=org,
        site=site,
        target=mapping,
        details={"claim": claim, "value": value, "role": role.slug, "priority": priority},
    )
    return mapping


@records_refusals("sso_mapping.delete")
@transaction.atomic
def sso_mapping_delete(*, actor: Actor, mapping: SsoRoleMapping) -> None:
    authorize(actor, "user:manage", mapping.org_id)
    # taking a grant away from people is as much a grant decision as giving it
    check_role_grantable(actor, mapping.role, mapping.org_id, mapping.site_id)
    activity_record(
        actor=actor,
        verb="sso_mapping.delete",
        org=mapping.org_id,
        site=mapping.site_id,
        target=mapping,
        details={"claim": mapping.claim, "value": mapping.value, "role": mapping.role.slug},
    )
    mapping.delete()


@records_refusals("sso_seats.update")
@transaction.atomic
def sso_seat_limit_set(*, actor: Actor, org: Organization, seats: int | None) -> None:
    """``None`` removes the limit."""
    authorize(actor, "org:manage", org.pk)
    if seats is not None and not 1 <= seats <= 1_000_000:
        raise ApplicationError("A number of seats from 1 to 1,000,000.", field="seats")
    before = SsoSeatLimit.unscoped.filter(org=org).values_list("seats", flat=True).first()
    if before == seats:
        return
    if seats is None:
        SsoSeatLimit.unscoped.filter(org=org).delete()
    else:
        SsoSeatLimit.unscoped.update_or_create(
            org=org, defaults={"seats": seats, "updated_at": timezone.now()}
        )
    activity_record(
        actor=actor,
        verb="sso_seats.update",
        org=org,
        target=org,
        details={"from": before, "to": seats},
    )
