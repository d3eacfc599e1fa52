"""Schemathesis against the running `livetx serve`: requests generated from the served OpenAPI
document find no 5xx and no answer that breaks the document (statuses, content types, bodies).

Driven from a plain test with hypothesis (schemathesis's pytest plugin does not load under this
pytest), one operation after another.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import Server

EXAMPLES = 25  # per operation


def test_no_server_errors_and_no_schema_violations(server: Server) -> None:
    schema = schemathesis.openapi.from_url(server.base_url + "/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(base_url=server.base_url, timeout=60)

        check()
