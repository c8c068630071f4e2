"""The API contract: strict ids, JSON errors for every failure, a schema that tells the truth,
throttles, uncacheable secrets, and ``org`` defaulting to the caller's only organization."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from django.test import Client
from rest_framework import serializers as drf_serializers
from rest_framework.test import APIClient

from accounts.api import serializers as api_serializers
from accounts.api.base import ScopedRelatedField, StrictInput
from accounts.models import Membership, Role, Site
from tests.accounts.support import issued_secret
from tests.conftest import OrgWorld, api_client_for, make_user

# --- ids are integers, nothing else ---------------------------------------------------------------

ID_FIELDS = [
    ("/api/v1/sites/", {"org": "ORG", "name": "Strict"}, "org"),
    ("/api/v1/roles/", {"org": "ORG", "name": "Strict", "permissions": []}, "org"),
    (
        "/api/v1/memberships/",
        {"org": "ORG", "email": "strict@alpha.example", "role": "viewer"},
        "org",
    ),
    ("/api/v1/site-roles/", {"site": "SITE", "user": "USER", "role": "viewer"}, "site"),
    ("/api/v1/site-roles/", {"site": "SITE", "user": "USER", "role": "viewer"}, "user"),
]
# Raw JSON for the id, "{pk}" standing for the real, valid id: each must be a 400 on that field.
BAD_IDS = [
    "1e400",  # infinity to Python's json: OverflowError, a 500, before
    "-1e400",
    "{pk}.0",  # floats never mean an integer...
    "{pk}.9",  # ...not even by truncation (3.9 meant 3)
    "{pk}e0",
    "99999999999999999999",  # beyond 64 bits
    "9223372036854775808",
    "0",
    "-{pk}",
    "true",
    "false",
    '"{pk}.0"',
    '" {pk}"',
    '"+{pk}"',
    '"{pk}_0"',
    '"\\u0661"',  # ARABIC-INDIC DIGIT ONE: int() takes it
    '""',
    '"1e400"',
    "[{pk}]",
    '{{"id": {pk}}}',
]


def _ids(world: OrgWorld) -> dict[str, int]:
    return {"ORG": world.org.pk, "SITE": world.sites[0].pk, "USER": world.users["viewer"].pk}


def _body(world: OrgWorld, payload: dict[str, Any], field: str, raw: str) -> bytes:
    ids = _ids(world)
    data = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in payload.items()}
    pk = data[field]
    data[field] = "__ID__"
    return json.dumps(data).replace('"__ID__"', raw.format(pk=pk)).encode()


@pytest.mark.parametrize(("url", "payload", "field"), ID_FIELDS, ids=lambda v: str(v)[:20])
def test_an_id_that_is_not_a_whole_number_in_range_is_a_400_on_its_field(
    org_a: OrgWorld, url: str, payload: dict[str, Any], field: str
) -> None:
    client = api_client_for(org_a.users["owner"])
    wrong = []
    for raw in BAD_IDS:
        response = client.post(
            url, _body(org_a, payload, field, raw), content_type="application/json"
        )
        if response.status_code != 400 or field not in response.json():
            wrong.append(f"{raw}: {response.status_code} {response.content[:100]!r}")
    assert not wrong, wrong


@pytest.mark.parametrize(("url", "payload", "field"), ID_FIELDS, ids=lambda v: str(v)[:20])
@pytest.mark.parametrize("raw", ["{pk}", '"{pk}"'], ids=["integer", "string-of-digits"])
def test_an_integer_id_or_a_string_of_digits_is_accepted(
    org_a: OrgWorld, url: str, payload: dict[str, Any], field: str, raw: str
) -> None:
    client = api_client_for(org_a.users["owner"])
    response = client.post(url, _body(org_a, payload, field, raw), content_type="application/json")
    assert response.status_code == 201, response.content


def test_form_posts_send_ids_as_strings(org_a: OrgWorld) -> None:
    client = api_client_for(org_a.users["owner"])
    response = client.post("/api/v1/sites/", {"org": str(org_a.org.pk), "name": "From a form"})
    assert response.status_code == 201, response.content
    assert response.json()["org"] == org_a.org.pk


def _api_serializers() -> list[type[drf_serializers.Serializer]]:
    return [
        cls
        for cls in vars(api_serializers).values()
        if isinstance(cls, type)
        and issubclass(cls, drf_serializers.Serializer)
        and cls.__module__ == api_serializers.__name__
        and cls not in (api_serializers.Serializer, api_serializers.ModelSerializer)
    ]


def test_every_writable_foreign_key_of_the_api_is_strict() -> None:
    """New id fields get the strict parsing by being made with ``scoped_related``."""
    loose = []
    for cls in _api_serializers():
        name = cls.__name__
        for field_name, field in cls().fields.items():
            related = isinstance(
                field, drf_serializers.RelatedField | drf_serializers.ManyRelatedField
            )
            if related and not field.read_only and not isinstance(field, ScopedRelatedField):
                loose.append(f"{name}.{field_name}")
    assert not loose, loose


def test_every_api_serializer_checks_json_types() -> None:
    loose = [cls.__name__ for cls in _api_serializers() if not issubclass(cls, StrictInput)]
    assert not loose, loose


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("patch", "/api/v1/orgs/{org}/", {"name": 0}, "name"),
        ("put", "/api/v1/orgs/{org}/", {"name": 12.5}, "name"),
        ("patch", "/api/v1/sites/{site}/", {"name": "ok", "location": 0}, "location"),
        ("post", "/api/v1/roles/", {"name": 7, "permissions": []}, "name"),
        ("post", "/api/v1/tokens/", {"name": 1e3}, "name"),
        ("post", "/api/v1/memberships/", {"email": "a@alpha.example", "role": 1}, "role"),
    ],
)
def test_a_number_is_not_a_string(
    org_a: OrgWorld, method: str, url: str, body: dict[str, Any], field: str
) -> None:
    url = url.format(org=org_a.org.pk, site=org_a.sites[0].pk)
    response = getattr(api_client_for(org_a.users["owner"]), method)(url, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()[field] == ["Not a valid string."]


def test_type_errors_come_with_the_other_field_errors(org_a: OrgWorld) -> None:
    body = {"name": 7, "permissions": ["nope"]}
    response = api_client_for(org_a.users["owner"]).post("/api/v1/roles/", body, format="json")
    assert response.status_code == 400 and set(response.json()) == {"name", "permissions"}


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (80, True),
        ("80", True),
        ("-3", True),
        (80.0, False),
        (True, False),
        ("8_0", False),
        ("", False),
    ],
)
def test_integer_fields_take_integers_and_digit_strings_only(value: Any, ok: bool) -> None:
    class Port(api_serializers.Serializer):
        port = drf_serializers.IntegerField()

    form = Port(data={"port": value})
    assert form.is_valid() is ok, form.errors


@pytest.mark.parametrize("pk", ["99999999999999999999", "9223372036854775808", "1e400", "0"])
@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_out_of_range_ids_in_the_path_are_json_404s(org_a: OrgWorld, pk: str, method: str) -> None:
    response = getattr(api_client_for(org_a.users["owner"]), method)(
        f"/api/v1/sites/{pk}/", {}, format="json"
    )
    assert response.status_code == 404 and "detail" in response.json()


# --- bodies over the size limit --------------------------------------------------------------------


@pytest.fixture
def token(org_a: OrgWorld) -> str:
    return issued_secret(org_a.users["owner"])


def _session(org_a: OrgWorld) -> tuple[Client, dict[str, str]]:
    client = Client(enforce_csrf_checks=True)
    client.force_login(org_a.users["owner"])
    csrf = "c" * 32  # an unmasked secret: the cookie and the header agree
    client.cookies["csrftoken"] = csrf
    return client, {"HTTP_X_CSRFTOKEN": csrf}


@pytest.mark.parametrize("auth", ["token", "session"])
@pytest.mark.parametrize("encoding", ["json", "form", "multipart"])
def test_a_body_over_the_limit_is_a_json_413(
    org_a: OrgWorld, token: str, settings: Any, auth: str, encoding: str
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    if auth == "token":
        client, headers = Client(), {"HTTP_AUTHORIZATION": f"Token {token}"}
    else:
        client, headers = _session(org_a)
    data = {"org": org_a.org.pk, "name": "Too big", "location": "y" * 8192}
    if encoding == "json":
        response = client.post(
            "/api/v1/sites/", json.dumps(data), content_type="application/json", **headers
        )
    elif encoding == "form":
        body = "&".join(f"{k}={v}" for k, v in data.items())
        response = client.post(
            "/api/v1/sites/", body, content_type="application/x-www-form-urlencoded", **headers
        )
    else:
        response = client.post("/api/v1/sites/", data, **headers)
    assert response.status_code == 413, response.content[:200]
    assert response["Content-Type"] == "application/json"
    assert "4096 bytes" in response.json()["detail"]
    assert (
        not Site.objects.restrict(org_a.users["owner"], "site:read").filter(name="Too big").exists()
    )


def test_the_default_limit_applies_too(org_a: OrgWorld, token: str) -> None:
    body = json.dumps({"org": org_a.org.pk, "name": "x", "location": "y" * (3 * 1024 * 1024)})
    response = Client().post(
        "/api/v1/sites/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
    )
    assert response.status_code == 413 and response.json()["detail"]


def test_too_many_form_fields_is_a_json_400(org_a: OrgWorld, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"f{i}=x" for i in range(50))
    response = api_client_for(org_a.users["owner"]).post(
        "/api/v1/sites/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400 and "detail" in response.json()


# --- pagination and filters refuse what they can't honour ------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "page_size=null",
        "page_size=",
        "page_size=0",
        "page_size=-5",
        "page_size=1.5",
        "page_size=abc",
    ]
    + ["page=null", "page=", "page=0", "page=last", "page=1.0", "page=%D9%A1"],
)
def test_pagination_parameters_that_are_not_positive_integers_are_400(
    org_a: OrgWorld, query: str
) -> None:
    response = api_client_for(org_a.users["viewer"]).get(f"/api/v1/sites/?{query}")
    assert response.status_code == 400, (query, response.content)
    assert list(response.json()) == [query.split("=")[0]]


def test_a_page_past_the_last_is_404_and_a_big_page_size_is_capped(org_a: OrgWorld) -> None:
    client = api_client_for(org_a.users["viewer"])
    assert client.get("/api/v1/sites/?page=2").status_code == 404
    body = client.get("/api/v1/sites/?page=1&page_size=100000").json()
    assert body["count"] == len(body["results"]) == 2


@pytest.mark.parametrize(
    "query",
    [
        "activity/?actor_type=",
        "activity/?actor_type=nobody",
        "activity/?result=",
        "activity/?org=",
        "activity/?site=",
        "activity/?since=",
        "sites/?org=",
        "roles/?is_builtin=",
        "roles/?is_builtin=maybe",
        "tokens/?mine=",
        "tokens/?mine=maybe",
        "users/?is_active=",
        "users/?is_active=sometimes",
        "memberships/?user=",
    ],
)
def test_a_typed_filter_given_without_a_valid_value_is_a_400_naming_it(
    org_a: OrgWorld, query: str
) -> None:
    response = api_client_for(org_a.users["owner"]).get(f"/api/v1/{query}")
    assert response.status_code == 400, (query, response.content)
    assert list(response.json()) == [query.split("?")[1].split("=")[0]]


@pytest.mark.parametrize(
    "query",
    [
        "activity/?verb=",
        "activity/?actor=",
        "sites/?q=",
        "memberships/?role=",
        "roles/?is_builtin=true",
    ],
)
def test_text_filters_may_be_empty(org_a: OrgWorld, query: str) -> None:
    assert api_client_for(org_a.users["owner"]).get(f"/api/v1/{query}").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/activity/", "/activity/"])
def test_date_filters_take_any_offset_python_does(org_a: OrgWorld, path: str) -> None:
    """PostgreSQL refuses offsets past ±15:59 (schemathesis found the 500)."""
    client = Client()
    client.force_login(org_a.users["owner"])
    assert client.get(path, {"until": "1574-10-17T09:07:24.30+17:16"}).status_code == 200
    assert client.get(path, {"since": "2026-01-01T00:00:00-23:59"}).status_code == 200


def test_a_date_utc_cannot_hold_is_a_400(org_a: OrgWorld) -> None:
    client = api_client_for(org_a.users["owner"])
    response = client.get("/api/v1/activity/", {"since": "0001-01-01T00:00:00+05:00"})
    assert response.status_code == 400 and list(response.json()) == ["since"]


def test_the_pages_keep_their_any_choice(org_a: OrgWorld) -> None:
    """The activity page submits its filter form with "Any" as an empty value."""
    client = Client()
    client.force_login(org_a.users["owner"])
    response = client.get("/activity/?actor_type=&result=&site=&since=&until=&verb=")
    assert response.status_code == 200


# --- the schema tells the truth --------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    generated: dict[str, Any] = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(generated, default=str))


def _response_schema(schema: dict[str, Any], path: str, method: str, code: str) -> dict[str, Any]:
    response = schema["paths"][path][method]["responses"][code]
    return {**response["content"]["application/json"]["schema"], "components": schema["components"]}


def _resolve(schema: dict[str, Any], ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_schema.get("$ref")
    if ref is None:
        return ref_or_schema
    resolved: dict[str, Any] = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def test_me_is_documented_as_the_one_object_it_returns(
    schema: dict[str, Any], org_a: OrgWorld
) -> None:
    documented = _resolve(schema, _response_schema(schema, "/api/v1/me/", "get", "200"))
    assert documented.get("type") == "object" and "memberships" in documented["properties"]
    body = api_client_for(org_a.users["viewer"]).get("/api/v1/me/").json()
    assert isinstance(body, dict) and set(documented["required"]) <= set(body)


def test_a_roles_org_is_nullable_in_responses_but_required_or_defaulted_in_requests(
    schema: dict[str, Any], org_a: OrgWorld
) -> None:
    response_org = schema["components"]["schemas"]["Role"]["properties"]["org"]
    request_org = schema["components"]["schemas"]["RoleRequest"]["properties"]["org"]
    assert response_org.get("nullable") is True
    assert not request_org.get("nullable") and request_org["minimum"] == 1
    builtin = Role.objects.restrict(org_a.users["viewer"], "user:read").get(
        slug="viewer", org__isnull=True
    )
    body = api_client_for(org_a.users["viewer"]).get(f"/api/v1/roles/{builtin.pk}/").json()
    assert body["org"] is None
    assert schema["components"]["schemas"]["Site"]["properties"]["org"].get("nullable") is None


def test_every_operation_documents_its_errors(schema: dict[str, Any]) -> None:
    missing = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            needed = {"401", "429"}
            if "requestBody" in operation:
                needed |= {"400", "413", "415"}
            if "{" in path:
                needed |= {"404"}
            if method in ("post", "put", "patch", "delete"):
                needed |= {"400", "403"}
            if "security" not in operation:  # public (the node gateway): no sign-in to refuse
                needed -= {"401", "403"}
            if needed - codes:
                missing.append(f"{method.upper()} {path}: {sorted(needed - codes)}")
            throttled = operation["responses"]["429"]
            assert "Retry-After" in throttled["headers"]
    assert not missing, missing


def _check(schema: dict[str, Any], path: str, method: str, response: Any) -> None:
    code = str(response.status_code)
    jsonschema.validate(response.json(), _response_schema(schema, path, method, code))


def test_error_bodies_match_their_documented_shapes(
    schema: dict[str, Any], org_a: OrgWorld, settings: Any
) -> None:
    owner = api_client_for(org_a.users["owner"])
    viewer = api_client_for(org_a.users["viewer"])
    _check(schema, "/api/v1/sites/", "post", owner.post("/api/v1/sites/", {}, format="json"))
    parse_error = owner.post("/api/v1/sites/", b"{nope", content_type="application/json")
    _check(schema, "/api/v1/sites/", "post", parse_error)
    bad_permissions = owner.post(
        "/api/v1/roles/", {"name": "R", "permissions": ["nope"]}, format="json"
    )
    assert bad_permissions.status_code == 400
    _check(schema, "/api/v1/roles/", "post", bad_permissions)
    forbidden = viewer.post("/api/v1/sites/", {"name": "No"}, format="json")
    assert forbidden.status_code == 403 and forbidden.json()["permission"] == "site:manage"
    _check(schema, "/api/v1/sites/", "post", forbidden)
    _check(schema, "/api/v1/sites/{id}/", "get", owner.get("/api/v1/sites/0/"))
    _check(schema, "/api/v1/sites/", "get", APIClient().get("/api/v1/sites/"))
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    too_big = owner.post("/api/v1/sites/", {"name": "x" * 200}, format="json")
    assert too_big.status_code == 413
    _check(schema, "/api/v1/sites/", "post", too_big)


def test_request_bodies_are_documented_as_json_only(schema: dict[str, Any]) -> None:
    """Form posts are parsed too, but an empty form field means "left out", which a JSON
    schema can't say; schemathesis found the schema promising what forms don't keep."""
    media = {
        media_type
        for item in schema["paths"].values()
        for operation in item.values()
        for media_type in operation.get("requestBody", {}).get("content", {})
    }
    assert media == {"application/json"}


def test_pagination_parameters_are_documented_as_positive(schema: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/sites/"]["get"]["parameters"]}
    assert parameters["page"]["schema"]["minimum"] == 1
    assert parameters["page_size"]["schema"]["minimum"] == 1


# --- secrets are never cached ----------------------------------------------------------------------


def test_a_new_tokens_secret_is_not_cacheable(org_a: OrgWorld) -> None:
    client = api_client_for(org_a.users["viewer"])
    created = client.post("/api/v1/tokens/", {"name": "secret"}, format="json")
    assert created.status_code == 201 and "no-store" in created["Cache-Control"]
    listed = client.get("/api/v1/tokens/")
    assert "no-store" not in listed.get("Cache-Control", "")


def test_an_invitation_link_is_not_cacheable(org_a: OrgWorld) -> None:
    response = api_client_for(org_a.users["owner"]).post(
        "/api/v1/memberships/",
        {"org": org_a.org.pk, "email": "new@alpha.example", "role": "viewer"},
        format="json",
    )
    assert response.status_code == 201 and response.json()["accept_url"]
    assert "no-store" in response["Cache-Control"]


# --- org may be left out when the caller has just one ----------------------------------------------

CREATES = [
    ("/api/v1/sites/", {"name": "Defaulted"}),
    ("/api/v1/roles/", {"name": "Defaulted", "permissions": ["site:read"]}),
    ("/api/v1/memberships/", {"email": "defaulted@alpha.example", "role": "viewer"}),
]


@pytest.mark.parametrize(("url", "payload"), CREATES, ids=[c[0] for c in CREATES])
def test_org_defaults_to_the_callers_only_org(
    org_a: OrgWorld, org_b: OrgWorld, url: str, payload: dict[str, Any]
) -> None:
    response = api_client_for(org_a.users["owner"]).post(url, payload, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["org"] == org_a.org.pk


@pytest.mark.parametrize(("url", "payload"), CREATES, ids=[c[0] for c in CREATES])
def test_org_is_required_from_a_member_of_several(
    org_a: OrgWorld, org_b: OrgWorld, url: str, payload: dict[str, Any]
) -> None:
    owner = org_a.users["owner"]
    Membership._default_manager.create(
        user=owner, org=org_b.org, role=Role._default_manager.get(slug="owner", org__isnull=True)
    )
    client = api_client_for(owner)
    response = client.post(url, payload, format="json")
    assert response.status_code == 400
    assert "several organizations" in response.json()["org"][0]
    named = client.post(url, {**payload, "org": org_b.org.pk}, format="json")
    assert named.status_code == 201 and named.json()["org"] == org_b.org.pk


def test_org_is_required_from_someone_in_no_org(db: None) -> None:
    loner = make_user("loner@nowhere.example")
    response = api_client_for(loner).post("/api/v1/sites/", {"name": "Nowhere"}, format="json")
    assert response.status_code == 400 and response.json()["org"] == ["This field is required."]
    assert not Site._default_manager.filter(name="Nowhere").exists()
