from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Model, ProtectedError, RestrictedError
from django.utils.text import slugify

from accounts.actor import Actor
from accounts.authz import authorize, authorize_on
from accounts.errors import ApplicationError
from accounts.models import Organization, Site
from accounts.services.activity import activity_record, records_refusals


def _slug(name: str, slug: str | None) -> str:
    """A slug given explicitly is used as is or refused: scripts refer to it by what they passed."""
    if slug:
        slug = slug.strip().lower()  # slugs are case-insensitive: ACME and acme are one org
        if slugify(slug) != slug or len(slug) > 60:
            raise ApplicationError(
                "Use at most 60 letters, digits, hyphens and underscores.", field="slug"
            )
        return slug
    value = slugify(name)[:60].strip("-_")
    if not value:
        raise ApplicationError(
            "Give a name or slug with at least one letter or digit.", field="slug"
        )
    return value


def _name(name: str) -> str:
    value = (name or "").strip()
    if not value:
        raise ApplicationError("This field may not be blank.", field="name")
    if len(value) > 120:
        raise ApplicationError("At most 120 characters.", field="name")
    return value


@transaction.atomic
def org_create(*, actor: Actor, name: str, slug: str | None = None) -> Organization:
    name = _name(name)
    slug = _slug(name, slug)
    if Organization.unscoped.filter(slug=slug).exists():
        raise ApplicationError(f"An organization with slug '{slug}' already exists.", field="slug")
    org = Organization.unscoped.create(name=name, slug=slug)
    activity_record(actor=actor, verb="org.create", org=org, target=org)
    return org


@records_refusals("org.update")
@transaction.atomic
def org_update(*, actor: Actor, org: Organization, name: str | None = None) -> Organization:
    authorize(actor, "org:manage", org.pk)
    changes: dict[str, list[str]] = {}
    if name is not None and name.strip() != org.name:
        new = _name(name)
        changes["name"] = [org.name, new]
        org.name = new
    if changes:
        org.save(update_fields=["name"])
        activity_record(
            actor=actor, verb="org.update", org=org, target=org, details={"changes": changes}
        )
    return org


@records_refusals("site.create")
@transaction.atomic
def site_create(
    *, actor: Actor, org: Organization, name: str, slug: str | None = None, location: str = ""
) -> Site:
    authorize(actor, "site:manage", org.pk)
    name = _name(name)
    slug = _slug(name, slug)
    if Site.unscoped.filter(org=org, slug=slug).exists():
        raise ApplicationError(
            f"This organization already has a site with slug '{slug}'.", field="slug"
        )
    try:
        with transaction.atomic():
            site = Site.unscoped.create(
                org=org, name=name, slug=slug, location=location.strip()[:200]
            )
    except IntegrityError as exc:
        raise ApplicationError("A site with this slug was just created.", field="slug") from exc
    activity_record(actor=actor, verb="site.create", org=org, site=site, target=site)
    return site


@records_refusals("site.update")
@transaction.atomic
def site_update(
    *, actor: Actor, site: Site, name: str | None = None, location: str | None = None
) -> Site:
    authorize_on(actor, "site:manage", site)
    changes: dict[str, list[str]] = {}
    if name is not None and name.strip() != site.name:
        new = _name(name)
        changes["name"] = [site.name, new]
        site.name = new
    if location is not None and location.strip() != site.location:
        changes["location"] = [site.location, location.strip()[:200]]
        site.location = location.strip()[:200]
    if changes:
        site.save(update_fields=["name", "location"])
        activity_record(
            actor=actor,
            verb="site.update",
            org=site.org_id,
            site=site,
            target=site,
            details={"changes": changes},
        )
    return site


@records_refusals("site.delete")
@transaction.atomic
def site_delete(*, actor: Actor, site: Site) -> None:
    authorize_on(actor, "site:manage", site)
    activity_record(
        actor=actor, verb="site.delete", org=site.org_id, target=site, details={"slug": site.slug}
    )
    try:
        site.delete()
    except ProtectedError as exc:  # the collector raises before it deletes anything
        raise ApplicationError(_still_used(exc.protected_objects, "this site")) from exc
    except RestrictedError as exc:
        raise ApplicationError(_still_used(exc.restricted_objects, "this site")) from exc


def _still_used(objects: Iterable[Model], what: str) -> str:
    """What still points at ``what``, counted by model ("3 miners, 1 fleet node still use this
    site: …"). Generic on purpose: accounts imports none of the apps whose rows point at its
    sites (the import-linter contracts in pyproject.toml)."""
    counts = Counter(type(obj)._meta for obj in objects)
    parts = [
        f"{n} {meta.verbose_name if n == 1 else meta.verbose_name_plural}"
        for meta, n in sorted(counts.items(), key=lambda item: str(item[0].verbose_name).lower())
    ]
    one = sum(counts.values()) == 1
    return (
        f"{', '.join(parts) or 'Other records'} still {'uses' if one else 'use'} {what}: "
        f"move or delete {'it' if one else 'them'} first."
    )
