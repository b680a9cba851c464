"""Schemathesis 4 against /api/openapi.json, in-process through the WSGI application.

Checks: not_a_server_error, response_schema_conformance, negative_data_rejection, ignored_auth.
Positive cases use the fuzzing tenant's own user and app ids in the path (so requests reach the
handlers instead of stopping at 'app does not exist'); negative cases keep whatever was generated.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
)

from collectors_module.wsgi import application

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "5"))
CHECKS = [not_a_server_error, response_schema_conformance, negative_data_rejection, ignored_auth]

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", application)
# The coverage phase enumerates boundary cases of every body property at collection time; on
# Clarifai's large messages that alone takes minutes, so this suite uses random fuzzing.
schema.config.phases.update(phases=["examples", "fuzzing"])
# The key is sent by the test (not generated), and unknown query parameters are ignored by
# design (as unknown JSON fields are), so neither is fuzzed as "negative" data.
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    with_security_parameters=False,
    allow_extra_parameters=False,
)

FUZZ_USER = "fuzzer"
FUZZ_APP = "fuzzapp"


@pytest.fixture
def keep_db_connection():
    """Calling the WSGI app directly fires request_finished, whose handler closes the database
    connection and with it the test's transaction; Django's own test client disconnects it too."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_tenant(keep_db_connection, make_user, make_app, make_key):
    user = make_user(FUZZ_USER)
    make_app(user, FUZZ_APP)
    return make_key(user).secret


def _own_ids(case) -> None:
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH):
        return
    params = case.path_parameters or {}
    for name in list(params):
        if name.endswith("user_id"):
            params[name] = FUZZ_USER
        elif name.endswith("app_id"):
            params[name] = FUZZ_APP


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_and_never_errors(case, fuzz_tenant):
    _own_ids(case)
    case.call_and_validate(headers={"Authorization": f"Key {fuzz_tenant}"}, checks=CHECKS)
