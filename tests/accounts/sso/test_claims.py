"""Claim paths and rule matching: pure functions, no database."""

from __future__ import annotations

from accounts.sso.claims import Rule, claim_values, email_verified, evaluate

CLAIMS = {
    "groups": ["ops", "racks-north", 7],
    "realm_access": {"roles": ["fleet-admin", "offline_access"]},
    "https://example.com/claims/team": "blue",
    "email_verified": True,
    "nested": {"deep": {"flag": False}},
}


def test_paths_reach_lists_nested_objects_and_url_named_claims() -> None:
    assert claim_values(CLAIMS, "groups") == {"ops", "racks-north", "7"}
    assert claim_values(CLAIMS, "realm_access.roles") == {"fleet-admin", "offline_access"}
    assert claim_values(CLAIMS, "https://example.com/claims/team") == {"blue"}
    assert claim_values(CLAIMS, "nested.deep.flag") == {"false"}


def test_missing_paths_and_non_scalars_give_nothing() -> None:
    assert claim_values(CLAIMS, "missing") == set()
    assert claim_values(CLAIMS, "realm_access") == set()  # an object is not a value
    assert claim_values(CLAIMS, "groups.ops") == set()
    assert claim_values({"groups": [{"name": "ops"}, None]}, "groups") == set()


def test_only_an_explicit_true_verifies_an_email() -> None:
    assert email_verified({"email_verified": True})
    assert email_verified({"email_verified": "true"})
    for value in (False, "false", 1, "yes", None):
        assert not email_verified({"email_verified": value})
    assert not email_verified({})


def rule(
    claim: str, value: str, role: int, site: int | None = None, priority: int = 100, id: int = 0
) -> Rule:
    return Rule(claim, value, role, site, priority, id)


def test_lowest_priority_wins_org_wide_and_per_site() -> None:
    rules = [
        rule("groups", "ops", role=3, priority=50, id=1),
        rule("realm_access.roles", "fleet-admin", role=2, priority=10, id=2),
        rule("groups", "racks-north", role=4, site=11, id=3),
        rule("groups", "ops", role=5, site=11, priority=200, id=4),
        rule("groups", "nobody-has-this", role=1, priority=0, id=5),
    ]
    outcome = evaluate(rules, CLAIMS)
    assert outcome.org_role_id == 2
    assert outcome.site_role_ids == {11: 4}
    assert outcome.matched == (2, 1, 3, 4)


def test_site_rules_alone_give_no_role_at_all() -> None:
    outcome = evaluate([rule("groups", "racks-north", role=4, site=11, id=1)], CLAIMS)
    assert outcome.org_role_id is None
    assert outcome.site_role_ids == {}


def test_no_rules_no_role() -> None:
    assert evaluate([], CLAIMS).org_role_id is None


def test_another_claim_can_vouch_for_the_email() -> None:
    assert email_verified({"xms_edov": True}, "xms_edov")
    assert email_verified({"ext": {"verified": "true"}}, "ext.verified")
    assert not email_verified({"email_verified": True}, "xms_edov")
