"""Reading provider claims: dotted paths, verified e-mail, and which mapping rules match."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_PATH_DEPTH = 8
MAX_VALUES = 500


def claim_values(claims: Mapping[str, Any], path: str) -> set[str]:
    """The values at a dotted ``path`` (``groups``, ``realm_access.roles``) as strings.

    A string, number or boolean is one value; a list gives its scalar items; anything else, or a
    path that isn't there, gives nothing. A key that itself contains dots (some providers use
    URLs as claim names) is tried whole first.
    """
    if path in claims:
        return _scalars(claims[path])
    node: Any = claims
    for part in path.split(".")[:MAX_PATH_DEPTH]:
        if not isinstance(node, Mapping) or part not in node:
            return set()
        node = node[part]
    return _scalars(node)


def _scalars(node: Any) -> set[str]:
    items: Iterable[Any] = node if isinstance(node, list) else [node]
    values = set()
    for item in list(items)[:MAX_VALUES]:
        if isinstance(item, bool):
            values.add("true" if item else "false")
        elif isinstance(item, str | int | float):
            values.add(str(item))
    return values


def email_verified(claims: Mapping[str, Any], path: str = "email_verified") -> bool:
    """Only an explicit true at ``path`` counts (some providers send the string "true")."""
    if path in claims:
        value = claims[path]
    else:
        values = claim_values(claims, path)
        value = "true" if values == {"true"} else None
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


@dataclass(frozen=True)
class Rule:
    """The parts of a mapping rule that matching needs (the model, or a test's literal)."""

    claim: str
    value: str
    role_id: int
    site_id: int | None
    priority: int
    id: int


@dataclass(frozen=True)
class Outcome:
    """What the rules give: the org-wide role and a role per site (``None``: no org role)."""

    org_role_id: int | None
    site_role_ids: dict[int, int]
    matched: tuple[int, ...]  # ids of the rules that matched, in priority order


def evaluate(rules: Iterable[Rule], claims: Mapping[str, Any]) -> Outcome:
    """First matching rule (lowest priority, then oldest) wins, org-wide and per site. Site
    roles need an org-wide role too: a person with no org role gets nothing at all."""
    org_role: int | None = None
    sites: dict[int, int] = {}
    matched: list[int] = []
    for rule in sorted(rules, key=lambda r: (r.priority, r.id)):
        if rule.value not in claim_values(claims, rule.claim):
            continue
        matched.append(rule.id)
        if rule.site_id is None:
            org_role = rule.role_id if org_role is None else org_role
        else:
            sites.setdefault(rule.site_id, rule.role_id)
    if org_role is None:
        return Outcome(None, {}, tuple(matched))
    return Outcome(org_role, sites, tuple(matched))
