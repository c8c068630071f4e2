"""Reads that more than one caller needs (API, pages, admin)."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import (
    ActivityEvent,
    Invitation,
    InvitationStatus,
    LoginEvent,
    LoginResult,
    Membership,
    Organization,
    Role,
    Site,
    SiteRoleAssignment,
    User,
)

CSV_EXPORT_LIMIT = 100_000
_CSV_FIELDS = [
    "created_at",
    "actor_type",
    "actor_label",
    "org_id",
    "org__name",
    "site_id",
    "site__name",
    "verb",
    "target_type",
    "target_id",
    "target_label",
    "result",
    "ip",
    "details",
]


def csv_safe(value: Any) -> str:
    """Neutralise spreadsheet formulas: a cell starting with = + - @ is prefixed with '."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def activity_csv_rows(queryset: QuerySet[ActivityEvent]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return value

    writer.writerow([name.replace("__", "_") for name in _CSV_FIELDS])
    yield flush()
    details = _CSV_FIELDS.index("details")
    rows = queryset.values_list(*_CSV_FIELDS)[:CSV_EXPORT_LIMIT]
    for row in rows.iterator(chunk_size=2000):
        cells = list(row)
        cells[details] = json.dumps(cells[details], sort_keys=True, ensure_ascii=False)
        writer.writerow([csv_safe(v) for v in cells])
        yield flush()


def me_summary(user: User) -> dict[str, Any]:
    from allauth.mfa.models import Authenticator

    memberships = (
        Membership.unscoped.filter(user=user)
        .select_related("org", "role")
        .order_by("org__name", "id")
    )
    site_roles = (
        SiteRoleAssignment.unscoped.filter(user=user)
        .select_related("site", "role")
        .order_by("site_id")
    )
    return {
        "user": user,
        "memberships": [
            {"org": m.org, "role": m.role.slug, "permissions": sorted(m.role.permissions)}
            for m in memberships
        ],
        "site_roles": [
            {
                "site": a.site_id,
                "org": a.site.org_id,
                "role": a.role.slug,
                "permissions": sorted(a.role.permissions),
            }
            for a in site_roles
        ],
        "mfa_enabled": Authenticator.objects.filter(
            user=user, type=Authenticator.Type.TOTP
        ).exists(),
    }


def my_invitations(user: User) -> QuerySet[Invitation]:
    """Open invitations addressed to ``user``'s e-mail (they aren't a member of those orgs yet,
    so this is the one read of invitations not scoped by org)."""
    return (
        Invitation.unscoped.filter(
            email__iexact=user.email,
            status=InvitationStatus.PENDING,
            expires_at__gt=timezone.now(),
        )
        .select_related("org", "role", "invited_by")
        .order_by("-sent_at", "-id")
    )


def org_invitations(user: Any, org: Organization) -> list[Invitation]:
    """``org``'s open invitations, for its Users page."""
    return list(
        Invitation.objects.restrict(user, "user:read")
        .filter(org=org, status=InvitationStatus.PENDING)
        .select_related("role", "invited_by")
        .order_by("email", "id")
    )


def current_org(request: Any) -> Any:
    """The org picked in the switcher (kept in the session), else the user's first org."""
    from accounts.models import Organization

    orgs = Organization.objects.restrict(request.user, "authenticated")
    wanted = request.session.get("org_id")
    org = orgs.filter(pk=wanted).first() if wanted else None
    return org or orgs.order_by("name", "id").first()


def shell_context(request: Any) -> dict[str, Any]:
    from accounts.models import Organization, Site, grants_for

    grants = grants_for(request.user)
    org = current_org(request)
    sites = list(Site.objects.restrict(request.user, "site:read").filter(org=org)) if org else []
    site_id = request.session.get("site_id")
    perms = grants.org_perms.get(org.pk, frozenset()) if org else frozenset()
    if grants.superuser:
        from accounts.permissions import ALL

        perms = ALL
    return {
        "org": org,
        "orgs": list(Organization.objects.restrict(request.user, "authenticated")),
        "sites": sites,
        "site": next((site for site in sites if site.pk == site_id), None),
        "perms": perms,
    }


# --- Reads for the pages ----------------------------------------------------------------------


def current_site(request: Any, org: Organization | None) -> Site | None:
    """The site picked in the switcher, if it is still one of ``org``'s visible sites."""
    site_id = request.session.get("site_id")
    if org is None or not site_id:
        return None
    return Site.objects.restrict(request.user, "site:read").filter(org=org, pk=site_id).first()


def dashboard_summary(user: Any, org: Organization, site: Site | None) -> dict[str, Any]:
    """Everything the dashboard shows of ``org`` — of ``site`` alone when the switcher picked one."""
    from accounts.models import grants_for

    grants = grants_for(user)
    can = {
        perm.replace(":", "_"): grants.allows(perm, org.pk)
        for perm in ("user:read", "user:manage", "activity:read", "site:manage")
    }
    sites = Site.objects.restrict(user, "site:read").filter(org=org)
    if site is not None:
        sites = sites.filter(pk=site.pk)
    members = Membership.objects.restrict(user, "user:read").filter(org=org)  # org-wide
    member_count = members.count() if can["user_read"] else None
    recent = None
    if can["activity_read"]:
        events = ActivityEvent.objects.restrict(user, "activity:read").filter(org=org)
        if site is not None:
            events = events.filter(site=site)
        recent = list(events.select_related("site")[:8])
    return {
        "can": can,
        "membership": Membership.unscoped.filter(org=org, user=user).select_related("role").first(),
        "sites": list(sites[:6]),
        "site_count": sites.count(),
        "member_count": member_count,
        "recent": recent,
        "todo_site": site is None and not sites.exists(),
        "todo_invite": can["user_manage"] and member_count == 1,
        "invitations": list(my_invitations(user)),
    }


@dataclass(frozen=True)
class MemberRow:
    membership: Membership
    site_roles: list[SiteRoleAssignment]
    mfa_enabled: bool
    last_owner: bool  # can't be demoted or removed: no control is offered


def org_roles(user: Any, org: Organization) -> QuerySet[Role]:
    """Roles that can be handed out in ``org``: the built-ins and the org's own custom roles."""
    built_in_first = ("-is_builtin", "id")  # owner … field tech (catalog order), then custom ones
    return (
        Role.objects.restrict(user, "user:read")
        .filter(Q(org__isnull=True) | Q(org=org))
        .order_by(*built_in_first)
    )


def member_rows(user: Any, org: Organization, memberships: Iterable[Membership]) -> list[MemberRow]:
    """Memberships with their site roles in ``org`` and whether TOTP is on, in two more queries."""
    from allauth.mfa.models import Authenticator

    members = list(memberships)
    user_ids = [m.user_id for m in members]
    site_roles: dict[int, list[SiteRoleAssignment]] = defaultdict(list)
    assignments = (
        SiteRoleAssignment.objects.restrict(user, "user:read")
        .filter(site__org=org, user_id__in=user_ids)
        .select_related("site", "role")
        .order_by("site__name", "id")
    )
    for assignment in assignments:
        site_roles[assignment.user_id].append(assignment)
    with_totp = set(
        Authenticator.objects.filter(
            user_id__in=user_ids, type=Authenticator.Type.TOTP
        ).values_list("user_id", flat=True)
    )
    owners = Membership.unscoped.filter(org=org, role__slug="owner", role__org__isnull=True)
    sole_owner = owners.values_list("pk", flat=True)[:2]
    only = sole_owner[0] if len(sole_owner) == 1 else None
    return [
        MemberRow(m, site_roles[m.user_id], m.user_id in with_totp, m.pk == only) for m in members
    ]


def login_history(user: User, limit: int = 20) -> list[LoginEvent]:
    """Sign-ins of ``user``, with failed attempts against their address (those carry no user)."""
    events = LoginEvent.objects.filter(
        Q(user=user) | Q(user__isnull=True, email__iexact=user.email)
    )
    return list(events.exclude(result=LoginResult.LOGOUT).order_by("-created_at", "-id")[:limit])


@dataclass(frozen=True)
class MfaOverview:
    totp_enabled: bool
    recovery_codes: bool
    recovery_codes_left: int


def mfa_overview(user: User) -> MfaOverview:
    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    found = {a.type: a for a in Authenticator.objects.filter(user=user)}
    codes = found.get(Authenticator.Type.RECOVERY_CODES)
    return MfaOverview(
        totp_enabled=Authenticator.Type.TOTP in found,
        recovery_codes=codes is not None,
        recovery_codes_left=len(RecoveryCodes(codes).get_unused_codes())
        if codes is not None
        else 0,
    )


_PERMISSION_GROUPS = {
    "org": "Organization",
    "user": "Members",
    "role": "Roles",
    "apikey": "API tokens",
    "activity": "Activity log",
    "site": "Sites",
    "fleet": "Fleet",
    "miner": "Miners",
    "fleetnode": "Fleet nodes",
    "discovery": "Discovery",
    "terminal": "Terminals",
}


def permission_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """The catalog as (group label, [(permission, description)]), grouped by prefix in catalog
    order: ``miner:reboot`` sits under Miners."""
    from accounts.permissions import CATALOG

    groups: dict[str, list[tuple[str, str]]] = {}
    for name, text in CATALOG.items():
        prefix = name.split(":", 1)[0]
        groups.setdefault(_PERMISSION_GROUPS.get(prefix, prefix.title()), []).append((name, text))
    return list(groups.items())
