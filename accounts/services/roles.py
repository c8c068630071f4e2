from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils.text import slugify

from accounts.actor import Actor
from accounts.authz import authorize
from accounts.errors import ApplicationError
from accounts.models import Organization, Role, grants_for
from accounts.permissions import BUILTIN_ROLES, validate_permissions
from accounts.services.activity import activity_record, records_refusals


def roles_sync_builtin() -> None:
    """Create or refresh the built-in roles from the catalog (runs after every migrate)."""
    for slug, (description, perms) in BUILTIN_ROLES.items():
        Role.unscoped.update_or_create(
            org=None,
            slug=slug,
            defaults={
                "name": slug.replace("_", " ").capitalize(),
                "description": description,
                "permissions": sorted(perms),
                "is_builtin": True,
            },
        )


def role_for_org(*, org: Organization, slug: str) -> Role:
    """A built-in role or one of ``org``'s custom roles, by slug; 400 if there is none."""
    role = (
        Role.unscoped.filter(slug=slug, org__isnull=True).first()
        or Role.unscoped.filter(slug=slug, org=org).first()
    )
    if role is None:
        raise ApplicationError(f"There is no role '{slug}' in this organization.", field="role")
    return role


def check_can_grant(
    *,
    actor: Actor,
    org_id: int | None,
    permissions: Iterable[str],
    what: str,
    field: str = "permissions",
    site_id: int | None = None,
) -> None:
    """Nobody hands out more than they hold in ``org_id`` (at ``site_id`` for a site role): not
    through a role, nor by editing one."""
    if actor.user is None:
        return
    held = grants_for(actor.user).held(org_id, site_id)
    missing = sorted(set(permissions) - held)
    if missing:
        raise ApplicationError(
            f"You can't grant {what}: it holds permissions you don't ({', '.join(missing)}).",
            field=field,
        )


def _clean_permissions(permissions: Iterable[str]) -> list[str]:
    perms = sorted(set(permissions))
    unknown = validate_permissions(perms)
    if unknown:
        raise ApplicationError(f"Unknown permissions: {', '.join(unknown)}", field="permissions")
    return perms


def _name_key(name: str) -> str:
    return slugify(name).replace("-", "_")


def _check_name_free(*, org_id: int | None, name: str, exclude_pk: int | None = None) -> None:
    """One name per role in an org, built-ins included ("field tech" is the built-in Field Tech)."""
    key = _name_key(name)
    others = Role.unscoped.filter(org_id=org_id)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    taken = set(BUILTIN_ROLES) | {_name_key(r.name) for r in others} | {r.slug for r in others}
    if key in taken:
        raise ApplicationError(f"A role called '{name}' already exists.", field="name")


@records_refusals("role.create")
@transaction.atomic
def role_create(
    *, actor: Actor, org: Organization, name: str, permissions: Iterable[str], description: str = ""
) -> Role:
    authorize(actor, "role:manage", org.pk)
    name = (name or "").strip()
    slug = slugify(name)[:60]
    if not slug:
        raise ApplicationError("Give the role a name.", field="name")
    _check_name_free(org_id=org.pk, name=name)
    if Role.unscoped.filter(org=org, slug=slug).exists():
        raise ApplicationError(
            "Another role's name starts with the same 60 characters; shorten this one.",
            field="name",
        )
    perms = _clean_permissions(permissions)
    check_can_grant(actor=actor, org_id=org.pk, permissions=perms, what=f"the role '{name}'")
    role = Role.unscoped.create(
        org=org, slug=slug, name=name[:80], description=description[:300], permissions=perms
    )
    activity_record(
        actor=actor,
        verb="role.create",
        org=org,
        target=role,
        details={"permissions": role.permissions},
    )
    return role


@records_refusals("role.update")
@transaction.atomic
def role_update(
    *,
    actor: Actor,
    role: Role,
    name: str | None = None,
    permissions: Iterable[str] | None = None,
    description: str | None = None,
) -> Role:
    if role.is_builtin:
        raise ApplicationError("Built-in roles can't be changed; create a custom role instead.")
    authorize(actor, "role:manage", role.org_id)
    before = list(role.permissions)
    before_text = (role.name, role.description)
    # Editing a role changes what everyone holding it may do: the editor must hold both versions.
    check_can_grant(
        actor=actor, org_id=role.org_id, permissions=before, what=f"the role '{role.name}'"
    )
    if name is not None and name.strip() and name.strip() != role.name:
        _check_name_free(org_id=role.org_id, name=name.strip(), exclude_pk=role.pk)
        role.name = name.strip()[:80]
    if description is not None:
        role.description = description[:300]
    if permissions is not None:
        role.permissions = _clean_permissions(permissions)
        check_can_grant(
            actor=actor,
            org_id=role.org_id,
            permissions=role.permissions,
            what=f"the role '{role.name}'",
        )
    if before == role.permissions and before_text == (role.name, role.description):
        return role  # nothing changed, nothing to record
    role.save()
    activity_record(
        actor=actor,
        verb="role.update",
        org=role.org_id,
        target=role,
        details={
            "added": sorted(set(role.permissions) - set(before)),
            "removed": sorted(set(before) - set(role.permissions)),
        },
    )
    return role


@records_refusals("role.delete")
@transaction.atomic
def role_delete(*, actor: Actor, role: Role) -> None:
    if role.is_builtin:
        raise ApplicationError("Built-in roles can't be deleted.")
    authorize(actor, "role:manage", role.org_id)
    if role.memberships.exists() or role.site_assignments.exists():
        raise ApplicationError(
            "This role is still assigned; give those members another role first."
        )
    activity_record(actor=actor, verb="role.delete", org=role.org_id, target=role)
    role.delete()
