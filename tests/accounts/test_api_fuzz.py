"""A schema-driven fuzz of the whole API, in-process: every operation, generated from
``/api/schema/``, against the real WSGI stack, with every schemathesis check.

A 500, an undocumented status, a body or header that doesn't match the schema, a schema-violating
request accepted: each fails the suite. Schema-valid requests may still be refused with a 400:
ids and slugs that don't exist (the schema can't know which do) and rules like "the last owner
stays" are only known at run time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode

from tests.accounts.support import issued_secret
from tests.conftest import OrgWorld

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

EXAMPLES = 10  # per operation and mode: the whole run stays well under a minute


@pytest.fixture
def fuzz_token(org_a: OrgWorld) -> str:
    return issued_secret(org_a.users["owner"], "fuzz")


@pytest.fixture
def api_schema(fuzz_token: str, settings: Any) -> Iterator[Any]:
    # The WSGI handler would close the test's connection at the end of each request (inside
    # the test transaction); Django's own test client disconnects the same handlers.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    config = SchemathesisConfig.from_dict(
        {
            "headers": {"Authorization": f"Token {fuzz_token}"},
            "generation": {"max-examples": EXAMPLES},
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "409"]
                },
                # schemathesis' own list, plus 414: a query string over 8 KiB is refused as such
                "negative_data_rejection": {
                    "expected-statuses": [
                        *("400", "401", "403", "404", "405", "406", "409", "414", "415"),
                        *("422", "428", "429", "5xx"),
                    ]
                },
            },
        }
    )
    try:
        schema = schemathesis.openapi.from_wsgi(
            "/api/schema/", get_wsgi_application(), config=config
        )
        # Revoking the fuzz's own token would leave nothing but 401s to test.
        yield schema.exclude(operation_id="tokens_destroy")
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_its_schema(api_schema: Any, mode: GenerationMode) -> None:
    failures = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,  # the same cases each run: a guard, not a lottery
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            case.call_and_validate()

        try:
            call()
        except Unsatisfiable:
            continue  # nothing schema-violating to send (no parameters, no body)
        except Exception as exc:  # one report for every operation that broke its contract
            failures.append(f"{operation.label}: {exc}")
    assert operations > 40, operations
    assert not failures, "\n\n".join(failures)
