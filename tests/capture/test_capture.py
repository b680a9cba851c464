"""Capture on predict through the real PostModelOutputs REST endpoint: matching and caller rules,
status changes, grants, sampling, inline pre-queue workflows, limits and caps, and failures that
must drop the capture (counted) while the prediction succeeds unchanged."""

from __future__ import annotations

import base64
import io
import time

import psycopg
import pytest
from django.db import connection
from django.db.models import F, Sum
from django.utils import timezone
from PIL import Image

from collectors_module.accounts.services import grant_capture, revoke_capture_grant
from collectors_module.capture import counters, limits, matching
from collectors_module.capture.models import Capture, CollectorCounter
from collectors_module.capture.selectors import collector_stats
from collectors_module.collectors import services
from collectors_module.collectors.models import COLLECTOR_INACTIVE, Collector
from tests.support.capture import SENTIMENT, predict_text

COLOR = {
    "model_user_id": "builtin",
    "model_app_id": "main",
    "model_id": "color-recognition",
    "model_version_id": "b13a9cff8522d90a1d8d6902fce2dc9a",
}


def captured(collector) -> list[Capture]:
    return list(Capture.objects.filter(collector=collector).order_by("created_at", "input_index"))


def counted(collector, metric: str) -> int:
    return counters.pending().get((collector.pk, metric), 0)


def concepts(r) -> list[tuple[str, float]]:
    return [(c["id"], round(c["value"], 4)) for o in r["outputs"] for c in o["data"]["concepts"]]


def png_b64(color=(200, 20, 20), size=(32, 32)) -> tuple[bytes, str]:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    raw = buf.getvalue()
    return raw, base64.b64encode(raw).decode()


# -- who is captured ---------------------------------------------------------------------------


def test_the_callers_prediction_is_captured_and_another_callers_is_not(
    api, alice, bob, make_collector
):
    c = make_collector(alice)
    r = predict_text(api, alice.secret, "what a lovely day")
    assert r["status"]["code"] == 10000, r
    [cap] = captured(c)
    assert cap.state == "accepted"
    assert cap.caller_id == alice.user.pk
    assert cap.request_id == r["status"]["req_id"]
    assert cap.input_index == 0
    assert cap.input_json() == {"text": {"raw": "what a lovely day"}}
    assert cap.output_json()["data"]["concepts"][0]["id"] == "positive"
    assert predict_text(api, bob.secret, "bob's own text")["status"]["code"] == 10000
    assert len(captured(c)) == 1
    assert counted(c, "matched") == 1
    assert counted(c, "accepted") == 1


def test_a_prediction_on_another_model_is_not_captured(api, alice, make_collector):
    c = make_collector(alice, source=COLOR)
    assert predict_text(api, alice.secret, "hello")["status"]["code"] == 10000
    assert captured(c) == []


def test_every_input_of_a_batch_is_one_capture_with_its_bytes(api, alice, make_collector):
    c = make_collector(alice, source=COLOR)
    raw, b64 = png_b64()
    path = "/v2/users/builtin/apps/main/models/color-recognition/outputs"
    inputs = [{"data": {"image": {"base64": b64}}} for _ in range(3)]
    r = api.post(path, {"inputs": inputs}, key=alice.secret)
    assert r["status"]["code"] == 10000, r
    caps = captured(c)
    assert [x.input_index for x in caps] == [0, 1, 2]
    assert bytes(caps[0].payload) == raw
    assert "base64" not in str(caps[0].input_data)
    assert caps[0].output_json()["data"]["concepts"]


def test_a_failed_input_is_not_captured(api, alice, make_collector):
    c = make_collector(alice, source=COLOR)
    _, b64 = png_b64()
    path = "/v2/users/builtin/apps/main/models/color-recognition/outputs"
    r = api.post(
        path, {"inputs": [{"data": {"image": {"base64": b64}}}, {"id": "empty"}]}, key=alice.secret
    )
    assert r["status"]["code"] == 10010
    assert [x.input_index for x in captured(c)] == [0]


def test_inactive_captures_nothing_reactivation_captures_again_delete_stops(
    api, alice, make_collector
):
    c = make_collector(alice)
    services.collector_set_status(app=alice.app, collector_id="c1", active=False)
    predict_text(api, alice.secret, "while paused")
    assert captured(c) == []
    services.collector_set_status(app=alice.app, collector_id="c1", active=True)
    predict_text(api, alice.secret, "after reactivation")
    assert [x.input_json()["text"]["raw"] for x in captured(c)] == ["after reactivation"]
    services.collectors_delete(app=alice.app, ids=["c1"])
    predict_text(api, alice.secret, "after delete")
    assert Capture.objects.count() == 0  # deleted with their collector, and nothing new


def test_a_change_made_by_another_process_is_noticed_within_a_second(api, alice, make_collector):
    c = make_collector(alice)
    predict_text(api, alice.secret, "one")
    # Another process deactivates it: no invalidation reaches this process, only the revision.
    Collector.objects.filter(pk=c.pk).update(status=COLLECTOR_INACTIVE, revision=F("revision") + 1)
    time.sleep(1.1)
    predict_text(api, alice.secret, "two")
    assert [x.input_json()["text"]["raw"] for x in captured(c)] == ["one"]


def test_an_inactive_collector_in_a_stale_index_still_captures_nothing(api, alice, make_collector):
    c = make_collector(alice)
    predict_text(api, alice.secret, "warm the index")
    Collector.objects.filter(pk=c.pk).update(status=COLLECTOR_INACTIVE)  # no revision bump at all
    predict_text(api, alice.secret, "stale index")
    assert len(captured(c)) == 1
    assert counted(c, "dropped:collector_inactive") == 1


def test_a_named_caller_is_captured_only_while_their_grant_lasts(api, alice, bob, make_collector):
    grant_capture(grantor=bob.user, grantee=alice.user)
    c = make_collector(alice, caller_user_id="bob")
    predict_text(api, bob.secret, "bob while granted")
    predict_text(api, alice.secret, "alice is not the caller")
    assert [x.caller_id for x in captured(c)] == [bob.user.pk]
    revoke_capture_grant(grantor=bob.user, grantee=alice.user)
    time.sleep(1.1)  # grant checks are cached for at most a second
    predict_text(api, bob.secret, "bob after revoking")
    assert len(captured(c)) == 1


def test_blank_caller_captures_others_only_with_the_models_opt_in(api, alice, bob, make_collector):
    r = api.post(
        "/v2/users/alice/apps/app1/models",
        {"model": {"id": "pub", "model_type_id": "text-classifier", "visibility": {"gettable": 50},
                   "model_version": {"metadata": {"runner": "builtin:sentiment"}}}},
        key=alice.secret,
    )  # fmt: skip
    assert r["status"]["code"] == 10000, r
    from collectors_module.applications.models import App

    App.objects.filter(pk=alice.app.pk).update(visibility=50)
    src = {"model_user_id": "alice", "model_app_id": "app1", "model_id": "pub",
           "model_version_id": r["model"]["model_version"]["id"]}  # fmt: skip
    c = make_collector(alice, caller_user_id="", source=src)
    assert c.caller_id is None
    # Without the model's opt-in: only alice's own predictions.
    r = predict_text(api, bob.secret, "bob calls alice's model", source=src)
    assert r["status"]["code"] == 10000
    assert r["outputs"][0]["model"]["metadata"] == {"capture_all_callers": False}
    predict_text(api, alice.secret, "alice calls it", source=src)
    assert [x.caller_id for x in captured(c)] == [alice.user.pk]
    # With it (visible to bob in GetModel and in the predict output): every caller's.
    r = api.patch(
        "/api/v2/users/alice/apps/app1/models/pub/capture_consent",
        {"capture_all_callers": True},
        key=alice.secret,
    )
    assert r["capture_all_callers"] is True, r
    got = api.get("/v2/users/alice/apps/app1/models/pub", key=bob.secret)
    assert got["model"]["metadata"] == {"capture_all_callers": True}
    r = predict_text(api, bob.secret, "bob again, opted in", source=src)
    assert r["outputs"][0]["model"]["metadata"] == {"capture_all_callers": True}
    assert sorted(x.caller_id for x in captured(c)) == sorted([alice.user.pk, bob.user.pk])


# -- admission ---------------------------------------------------------------------------------


def test_random_sampling_is_deterministic_and_counted(api, alice, make_collector):
    c = make_collector(alice, sample=0.3)
    for i in range(40):
        predict_text(api, alice.secret, f"text {i}")
    kept, out = len(captured(c)), counted(c, "sampled_out")
    assert kept + out == 40
    assert 3 <= kept <= 25
    from collectors_module.capture.admission import draw

    assert draw("req", 0, c.pk) == draw("req", 0, c.pk)


def test_an_operator_pre_queue_workflow_filters_inline_on_the_output(api, alice, make_collector):
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.core.protojson import from_dict
    from collectors_module.inference.services import model_create
    from collectors_module.workflows.services import workflow_create

    pb = resources_pb2.Model(id="only-positive", model_type_id="concept-thresholder")
    pb.output_info.params.update(
        {"concept_threshold_type": "GREATER_THAN", "filter_other_concepts": True}
    )
    pb.output_info.data.concepts.add(id="positive", value=0.6)
    model_create(app=alice.app, model_pb=pb)
    wf = from_dict({"id": "keep-positive", "nodes": [{"id": "t", "model": {"id": "only-positive"}}]},
                   resources_pb2.Workflow)  # fmt: skip
    workflow_create(app=alice.app, workflow_pb=wf)
    c = make_collector(alice, sample=0, pre_queue_workflow_id="keep-positive")
    predict_text(api, alice.secret, "I love this, wonderful and great")
    predict_text(api, alice.secret, "I hate this, terrible and awful")
    assert [x.input_json()["text"]["raw"] for x in captured(c)] == [
        "I love this, wonderful and great"
    ]
    assert not captured(c)[0].pre_queue_pending  # decided inline, nothing left for the worker
    assert counted(c, "filtered_inline:t") == 1


def test_rate_limits_hold_and_drops_are_counted(api, alice, make_collector):
    c = make_collector(alice)
    services.collector_set_limits(app=alice.app, collector_id="c1", limits={"max_per_minute": 2})
    for i in range(5):
        assert predict_text(api, alice.secret, f"t{i}")["status"]["code"] == 10000
    assert len(captured(c)) == 2
    assert counted(c, "dropped:rate_limited") == 3


def test_rate_limits_are_shared_through_redis(api, alice, make_collector):
    c = make_collector(alice)
    services.collector_set_limits(app=alice.app, collector_id="c1", limits={"max_per_hour": 3})
    predict_text(api, alice.secret, "a")
    limits.rate_limiter.reset()  # as if the next prediction reached another web process
    for t in ("b", "c", "d"):
        predict_text(api, alice.secret, t)
    assert len(captured(c)) == 3


def test_unreachable_redis_drops_limited_captures_and_never_the_prediction(
    api, alice, make_collector, settings
):
    baseline = predict_text(api, alice.secret, "a fine day")
    limited = make_collector(alice, "limited")
    free = make_collector(alice, "free")
    services.collector_set_limits(
        app=alice.app, collector_id="limited", limits={"max_per_minute": 100}
    )
    settings.COLLECTORS_LIMITER_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens
    limits.rate_limiter.reset()
    started = time.perf_counter()
    for _ in range(3):
        r = predict_text(api, alice.secret, "a fine day")
        assert r["status"]["code"] == 10000
        assert concepts(r) == concepts(baseline)
    assert time.perf_counter() - started < 2.0
    assert captured(limited) == []
    assert counted(limited, "dropped:limiter_unavailable") == 3
    assert len(captured(free)) == 3  # collectors without rate limits never touch Redis


def test_per_collector_backlog_cap(api, alice, make_collector):
    c = make_collector(alice)
    services.collector_set_limits(app=alice.app, collector_id="c1", limits={"max_pending": 2})
    for i in range(4):
        predict_text(api, alice.secret, f"t{i}")
    assert len(captured(c)) == 2
    assert counted(c, "dropped:backlog_full") == 2
    Capture.objects.filter(collector=c).update(state="ingested")
    limits.backlog.reset()  # the cached count expires after a second
    predict_text(api, alice.secret, "room again")
    assert len(captured(c)) == 3


def test_global_backlog_cap(api, alice, make_collector, settings):
    settings.COLLECTORS_MAX_PENDING_TOTAL = 3
    a, b = make_collector(alice, "a"), make_collector(alice, "b")
    for i in range(3):
        predict_text(api, alice.secret, f"t{i}")
    assert len(captured(a)) + len(captured(b)) == 3
    assert counted(a, "dropped:backlog_full") + counted(b, "dropped:backlog_full") == 3


def test_a_too_large_input_is_dropped_and_counted(api, alice, make_collector, settings):
    settings.COLLECTORS_MAX_PAYLOAD_BYTES = 64
    c = make_collector(alice, source=COLOR)
    _, b64 = png_b64(size=(64, 64))
    path = "/v2/users/builtin/apps/main/models/color-recognition/outputs"
    r = api.post(path, {"inputs": [{"data": {"image": {"base64": b64}}}]}, key=alice.secret)
    assert r["status"]["code"] == 10000
    assert captured(c) == []
    assert counted(c, "dropped:payload_too_large") == 1


def test_a_locked_capture_table_drops_the_capture_and_the_prediction_succeeds(
    api, alice, make_collector
):
    # Nothing in this test's transaction may touch the capture table before the other connection
    # locks it (its own row locks would make LOCK TABLE wait on us).
    baseline = predict_text(api, alice.secret, "sunny and warm")
    c = make_collector(alice)
    sd = connection.settings_dict
    with psycopg.connect(
        host=sd["HOST"] or "127.0.0.1", port=sd["PORT"] or 5432, user=sd["USER"], dbname=sd["NAME"],
        password=sd.get("PASSWORD") or None, autocommit=False,
    ) as other:  # fmt: skip
        other.execute("SET lock_timeout = '5s'")
        other.execute(f"LOCK TABLE {Capture._meta.db_table} IN EXCLUSIVE MODE")
        started = time.perf_counter()
        r = predict_text(api, alice.secret, "sunny and warm")
        elapsed = time.perf_counter() - started
        other.rollback()
    assert r["status"]["code"] == 10000
    assert concepts(r) == concepts(baseline)
    assert elapsed < 1.0
    assert counted(c, "dropped:capture_write_timeout") == 1
    assert captured(c) == []
    # The prediction's transaction still works and the next capture is written normally.
    predict_text(api, alice.secret, "after the lock")
    assert len(captured(c)) == 1


def test_capture_publishes_after_commit(
    api, alice, make_collector, django_capture_on_commit_callbacks
):
    make_collector(alice)
    with django_capture_on_commit_callbacks() as callbacks:
        predict_text(api, alice.secret, "publish me")
    assert len(callbacks) == 1


def test_counters_flush_to_rows_and_feed_the_stats(api, alice, make_collector):
    c = make_collector(alice, sample=0.5)
    for i in range(10):
        predict_text(api, alice.secret, f"s{i}")
    assert counters.flush() >= 2
    assert counters.pending() == {}
    totals = dict(
        CollectorCounter.objects.filter(collector=c).values_list("metric").annotate(n=Sum("count"))
    )
    assert totals["matched"] == 10
    assert totals["matched"] == totals.get("sampled_out", 0) + totals.get("accepted", 0)
    stats = collector_stats(c)
    assert stats["matched"] == 10
    assert stats["accepted"] == len(captured(c)) == totals.get("accepted", 0)
    assert stats["pending"] == stats["accepted"]
    assert stats["sampled_out"] == totals.get("sampled_out", 0)
    counters.count(c.pk, "matched", 5)
    counters.flush()
    assert collector_stats(c)["matched"] == 15  # upserted into the same minute


def test_no_matching_collector_means_no_capture_work(api, alice, make_collector, settings):
    from django.test.utils import CaptureQueriesContext

    settings.CACHE_CHECK_SECONDS = 60  # no periodic change check in this test
    make_collector(alice, "on-another-model", source=COLOR)
    predict_text(api, alice.secret, "warm up")  # builds the (empty) index
    with CaptureQueriesContext(connection) as queries:
        r = predict_text(api, alice.secret, "no collectors anywhere")
    assert r["status"]["code"] == 10000
    assert [q["sql"] for q in queries.captured_queries] == []  # keys and versions are cached too
    assert Capture.objects.count() == 0


@pytest.mark.parametrize("async_commit", ["0", "1"])
def test_the_capture_timeouts_do_not_leak_into_the_callers_transaction(
    api, alice, make_collector, settings, async_commit
):
    settings.COLLECTORS_CAPTURE_ASYNC_COMMIT = async_commit == "1"
    c = make_collector(alice)

    def settings_now():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), "
                "current_setting('synchronous_commit')"
            )
            return cursor.fetchone()

    before = settings_now()
    assert (
        predict_text(api, alice.secret, "inside the test's transaction")["status"]["code"] == 10000
    )
    assert len(captured(c)) == 1
    assert settings_now() == before


def test_a_silent_redis_costs_one_short_timeout_then_the_breaker_skips_it(
    api, alice, make_collector, settings
):
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    accepted: list = []

    def accept_and_say_nothing():  # a blackhole peer: connections open, no reply ever
        while True:
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    try:
        settings.COLLECTORS_LIMITER_REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        c = make_collector(alice)
        services.collector_set_limits(app=alice.app, collector_id="c1", limits={"max_per_day": 10})
        limits.rate_limiter.reset()
        started = time.perf_counter()
        for i in range(6):
            assert predict_text(api, alice.secret, f"t{i}")["status"]["code"] == 10000
        assert time.perf_counter() - started < 2.0
        assert counted(c, "dropped:limiter_unavailable") == 6
        assert captured(c) == []
        assert (
            len(accepted) == 1
        )  # only the first prediction tried Redis; the breaker kept the rest off it
    finally:
        silent.close()
        for conn in accepted:
            conn.close()


def test_a_collector_deactivated_elsewhere_keeps_captures_made_before_and_drops_later_ones(
    api, alice, make_collector
):
    c = make_collector(alice)
    predict_text(api, alice.secret, "warm the index")
    # Another process deactivates it; this process's index has not noticed yet.
    Collector.objects.filter(pk=c.pk).update(
        status=COLLECTOR_INACTIVE, deactivated_at=timezone.now()
    )
    predict_text(api, alice.secret, "stale index")
    assert len(captured(c)) == 1
    assert counted(c, "dropped:collector_inactive") == 1


def test_caller_problem_tells_the_worker_when_a_grant_was_revoked(alice, bob, make_collector):
    from collectors_module.capture.selectors import caller_problem

    grant_capture(grantor=bob.user, grantee=alice.user)
    c = make_collector(alice, caller_user_id="bob")
    assert caller_problem(c, bob.user.pk) == ""
    assert caller_problem(c, alice.user.pk) == "caller_not_allowed"
    revoke_capture_grant(grantor=bob.user, grantee=alice.user)
    assert caller_problem(c, bob.user.pk) == "grant_revoked"
    own = make_collector(alice, "own")
    assert caller_problem(own, alice.user.pk) == ""


def _predict_with_request_id(api, secret, text, request_id):
    s = SENTIMENT
    path = (
        f"/v2/users/{s['model_user_id']}/apps/{s['model_app_id']}/models/{s['model_id']}"
        f"/versions/{s['model_version_id']}/outputs"
    )
    body = {"inputs": [{"data": {"text": {"raw": text}}}]}
    return api.post(path, body, key=secret, headers={"X-Request-ID": request_id})


def test_the_same_request_and_input_is_captured_once(api, alice, make_collector):
    c = make_collector(alice)
    for _ in range(2):
        r = _predict_with_request_id(api, alice.secret, "retried by the client", "client-req-1")
        assert r["status"]["code"] == 10000
    assert len(captured(c)) == 1
    assert counted(c, "dropped:duplicate") == 1


def test_the_captured_row_holds_the_input_without_bytes_and_the_bytes_apart(
    api, alice, make_collector
):
    c = make_collector(alice, source=COLOR)
    raw, b64 = png_b64()
    path = "/v2/users/builtin/apps/main/models/color-recognition/outputs"
    r = api.post(path, {"inputs": [{"data": {"image": {"base64": b64}}}]}, key=alice.secret)
    assert r["status"]["code"] == 10000
    [cap] = captured(c)
    assert bytes(cap.payload) == raw
    assert "base64" not in cap.input_json().get("image", {})
    assert (
        cap.output_json()["data"]["concepts"][0]["id"]
        == r["outputs"][0]["data"]["concepts"][0]["id"]
    )
    assert (cap.caller_id, cap.request_id) == (alice.user.pk, r["status"]["req_id"])


# -- servers: background threads do the periodic work, never the request ----------------------


@pytest.fixture
def background_threads(settings):
    from collectors_module.core import generations

    settings.BACKGROUND_THREADS = True
    settings.CACHE_CHECK_SECONDS = 0.2
    yield
    generations.stop_thread()


@pytest.mark.django_db(transaction=True)
def test_the_background_thread_notices_other_processes_changes_off_the_prediction_path(
    api, alice, make_collector, background_threads
):
    from django.test.utils import CaptureQueriesContext

    c = make_collector(alice)
    deadline = time.monotonic() + 5
    while not matching.candidates(c.source_model_version_id) and time.monotonic() < deadline:
        time.sleep(0.02)  # the background thread rebuilds the index (within ms)
    predict_text(api, alice.secret, "one")
    # Another process deactivates it (a committed raw UPDATE: only the trigger tells us).
    Collector.objects.filter(pk=c.pk).update(
        status=COLLECTOR_INACTIVE, deactivated_at=timezone.now(), revision=F("revision") + 1
    )
    deadline = time.monotonic() + 5
    while matching.candidates(c.source_model_version_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert matching.candidates(c.source_model_version_id) == ()
    with CaptureQueriesContext(connection) as queries:
        predict_text(api, alice.secret, "two")
    assert [q["sql"] for q in queries.captured_queries] == []
    assert [x.input_json()["text"]["raw"] for x in captured(c)] == ["one"]


@pytest.mark.django_db(transaction=True)
def test_in_servers_backlog_counts_come_from_the_background_thread(
    api, alice, make_collector, background_threads
):
    from django.test.utils import CaptureQueriesContext

    c = make_collector(alice)
    services.collector_set_limits(app=alice.app, collector_id="c1", limits={"max_pending": 2})
    deadline = time.monotonic() + 5
    while not matching.candidates(c.source_model_version_id) and time.monotonic() < deadline:
        time.sleep(0.02)
    with CaptureQueriesContext(connection) as ctx:
        for t in ("one", "two", "three"):
            assert predict_text(api, alice.secret, t)["status"]["code"] == 10000
    assert not [q for q in ctx.captured_queries if "COUNT(*)" in q["sql"]]  # none on the request
    deadline = time.monotonic() + 5
    while limits.backlog._per.get(c.pk) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert limits.backlog._per[c.pk][0] >= 2  # the background thread counted the pending rows
    for t in ("four", "five"):
        predict_text(api, alice.secret, t)
    assert len(captured(c)) <= 3
    assert counted(c, "dropped:backlog_full") >= 2
