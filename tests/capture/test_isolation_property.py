"""Property (reliability.md §6.3 T7): for random users, models, collectors, grants, status changes
and predictions, a prediction is captured by a collector exactly when the collector is active and
the caller rules allow it:

    captured => collector active AND (caller == collector caller, who is the owner or granted
                capture to the owner; OR blank caller on a model the owner owns, and the caller
                is the owner or the model opts in to capture_all_callers)
                AND key owner == collector owner
and, with a sample of 1.0, every allowed prediction is captured (so the test cannot pass by
capturing nothing)."""

from __future__ import annotations

import uuid

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collectors_module.accounts.models import CaptureGrant, User
from collectors_module.accounts.services import grant_capture, key_create, revoke_capture_grant
from collectors_module.applications.models import App
from collectors_module.capture import counters, matching
from collectors_module.capture.models import Capture
from collectors_module.collectors import services
from collectors_module.collectors.models import Collector
from collectors_module.core.errors import ApiError
from collectors_module.core.protojson import from_dict
from collectors_module.inference.models import Model
from collectors_module.inference.services import model_create, model_set_capture_all_callers
from collectors_module.inference.services import predict as predict_service

SENTIMENT_VERSION = "996e3c70d6372b1e7e3c10875ebd2b8b"
N_USERS = 3

collector_specs = st.lists(
    st.tuples(
        st.integers(0, N_USERS - 1),  # owner
        st.integers(
            -1, N_USERS
        ),  # model: -1 builtin, i = user i's own model (N_USERS: builtin too)
        st.one_of(st.none(), st.integers(0, N_USERS - 1)),  # caller (None = blank)
        st.booleans(),  # active
    ),
    min_size=1,
    max_size=5,
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("predict"), st.integers(0, N_USERS - 1), st.integers(-1, N_USERS - 1)),
        st.tuples(st.just("grant"), st.integers(0, N_USERS - 1), st.integers(0, N_USERS - 1)),
        st.tuples(st.just("revoke"), st.integers(0, N_USERS - 1), st.integers(0, N_USERS - 1)),
        st.tuples(st.just("toggle"), st.integers(0, 4), st.just(0)),
        st.tuples(st.just("optin"), st.integers(0, N_USERS - 1), st.just(0)),
    ),
    min_size=1,
    max_size=12,
)
initial_grants = st.sets(
    st.tuples(st.integers(0, N_USERS - 1), st.integers(0, N_USERS - 1)), max_size=4
)


def _world(tag: str):
    users, apps, keys, versions = [], [], [], []
    for i in range(N_USERS):
        user = User.objects.create(username=f"p{tag}u{i}", password="!", plan="professional")
        app = App.objects.create(owner=user, public_id="app", visibility=50)
        key = key_create(owner=user, scopes=["All"]).key
        model = model_create(
            app=app,
            model_pb=from_dict(
                {"id": "m", "model_type_id": "text-classifier", "visibility": {"gettable": 50},
                 "model_version": {"metadata": {"runner": "builtin:sentiment"}}},
                resources_pb2.Model,
            ),
        )  # fmt: skip
        users.append(user)
        apps.append(app)
        keys.append(key)
        versions.append(model.latest_version())
    return users, apps, keys, versions


def _allowed(collector: Collector, caller: User, model_version) -> bool:
    owner_id = collector.app.owner_id
    if collector.status != 52001 or collector.source_model_version_id != model_version.pk:
        return False
    if collector.post_inputs_key is None or collector.post_inputs_key.owner_id != owner_id:
        return False
    if collector.caller_id is None:
        model = Model.objects.get(pk=model_version.model_id)  # the flag as stored now
        if model.app.owner_id != owner_id:
            return False
        return caller.pk == owner_id or model.capture_all_callers
    if collector.caller_id != caller.pk:
        return False
    return (
        caller.pk == owner_id
        or CaptureGrant.objects.filter(
            grantor=caller, grantee_id=owner_id, revoked_at__isnull=True
        ).exists()
    )


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])  # fmt: skip
@given(specs=collector_specs, grants=initial_grants, ops=operations)
# Known hard cases: a grant revoked after creation; a collector paused, then resumed.
@example(
    specs=[(0, -1, 1, True)],
    grants={(1, 0), (2, 0)},
    ops=[
        ("predict", 0, -1),
        ("predict", 2, -1),
        ("predict", 1, -1),
        ("revoke", 1, 0),
        ("predict", 1, -1),
    ],
)
@example(
    specs=[(0, 0, None, True)],
    grants=set(),
    ops=[
        ("predict", 2, 0),
        ("toggle", 0, 0),
        ("predict", 1, 0),
        ("toggle", 0, 0),
        ("predict", 0, 0),
    ],
)
# A blank caller: the owner's own predictions; others' only while the model opts in.
@example(
    specs=[(0, 0, None, True)],
    grants={(1, 0)},
    ops=[
        ("predict", 1, 0),
        ("predict", 0, 0),
        ("optin", 0, 0),
        ("predict", 1, 0),
        ("optin", 0, 0),
        ("predict", 2, 0),
    ],
)
def test_captured_only_when_active_and_the_caller_rules_allow(specs, grants, ops):
    try:
        _run(specs, grants, ops)
    finally:
        matching.invalidate()
        counters.discard()


def _run(specs, grants, ops):
    from collectors_module.inference.models import ModelVersion

    matching.invalidate()
    users, apps, keys, versions = _world(uuid.uuid4().hex[:8])
    builtin = ModelVersion.objects.select_related("model__app").get(public_id=SENTIMENT_VERSION)
    for grantor, grantee in grants:
        if grantor != grantee:
            grant_capture(grantor=users[grantor], grantee=users[grantee])

    def version(i):
        return builtin if i < 0 or i >= N_USERS else versions[i]

    collectors: list[Collector] = []
    for n, (owner, model, caller, active) in enumerate(specs):
        mv = version(model)
        src = {
            "model_user_id": mv.model.app.owner.username,
            "model_app_id": mv.model.app.public_id,
            "model_id": mv.model.public_id,
            "model_version_id": mv.public_id,
            "post_inputs_key_id": keys[owner].public_id,
            "caller_user_id": "" if caller is None else users[caller].username,
        }
        body = {"id": f"c{n}", "pre_queue_random_sample": 1.0,
                "status": {"code": 52001 if active else 52002},
                "collector_source": {"api_post_model_outputs_collector_source": src}}  # fmt: skip
        try:
            collectors.append(
                services.collector_create(
                    app=apps[owner],
                    actor=users[owner],
                    collector_pb=from_dict(body, resources_pb2.Collector),
                )
            )
        except ApiError:
            continue  # refused at creation (e.g. no grant, blank caller on a foreign model)

    for op, a, b in ops:
        if op == "grant" and a != b:
            grant_capture(grantor=users[a], grantee=users[b])
        elif op == "revoke":
            revoke_capture_grant(grantor=users[a], grantee=users[b])
        elif op == "optin":
            model = versions[a].model
            model.refresh_from_db()
            model_set_capture_all_callers(
                app=apps[a], model_id=model.public_id, value=not model.capture_all_callers
            )
        elif op == "toggle" and collectors:
            c = collectors[a % len(collectors)]
            c = services.collector_set_status(
                app=c.app, collector_id=c.public_id, active=not c.is_active
            )
        elif op == "predict":
            caller, mv = users[a], version(b)
            rows = list(Collector.objects.filter(pk__in=[c.pk for c in collectors]).select_related(
                "app", "post_inputs_key"))  # fmt: skip
            expected = {c.pk for c in rows if _allowed(c, caller, mv)}
            before = set(Capture.objects.values_list("pk", flat=True))
            request_id = uuid.uuid4().hex
            predict_service(
                caller=caller,
                model_version=mv,
                inputs=[
                    resources_pb2.Input(
                        data=resources_pb2.Data(text=resources_pb2.Text(raw="good day"))
                    )
                ],
                request_id=request_id,
            )
            new = list(Capture.objects.exclude(pk__in=before).select_related("collector__app"))
            got = {cap.collector_id for cap in new}
            for cap in new:
                assert cap.caller_id == caller.pk
                assert cap.request_id == request_id
            assert got == expected, (op, a, b, got, expected)
