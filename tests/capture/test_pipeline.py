"""The worker side of the capture path: claim, re-check, ingest one input, one end state."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from collectors_module.capture.models import Capture, CaptureState
from collectors_module.capture.relay import enqueue_publish, flush, publish_ids
from collectors_module.capture.worker import destination_input_id, process, process_batch
from collectors_module.core.errors import SC
from collectors_module.inputs.models import Input
from tests.support.capture import predict_text

pytestmark = pytest.mark.django_db(transaction=True)


def real_outputs(collector, text: str) -> list[dict]:
    """The source model's real prediction for a text input, stored as the hook stores it."""
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.core.protojson import to_dict
    from collectors_module.inference.services import run_model_version

    (result,) = run_model_version(
        collector.source_model_version, [resources_pb2.Data(text=resources_pb2.Text(raw=text))]
    )
    return [{"data": to_dict(result, compact=True)}]


def accept(
    collector, caller, text: str = "what a lovely day", *, publish: bool = True, **fields
) -> Capture:
    """Insert an accepted capture the way the capture hook does, publishing after commit."""
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.core.protojson import from_dict

    outputs = fields.pop("outputs", None) or real_outputs(collector, text)
    output = from_dict(outputs[0], resources_pb2.Output) if outputs else resources_pb2.Output()
    data = resources_pb2.Data(text=resources_pb2.Text(raw=text))
    with transaction.atomic():
        capture = Capture.objects.create(
            collector=collector,
            caller=caller,
            request_id=uuid.uuid4().hex,
            input_pb=data.SerializeToString(),
            payload=fields.pop("payload", None),
            output_pb=output.SerializeToString(),
            **fields,
        )
        if publish:
            transaction.on_commit(lambda: enqueue_publish(capture.pk))
    return capture


def wait_terminal(ids, timeout: float = 30.0) -> dict[str, str]:
    """Wait until every capture is in a terminal state; returns {id: state}."""
    ids = [str(i) for i in ids]
    deadline = time.monotonic() + timeout
    pending = set(CaptureState.values) - {s.value for s in _terminal()}
    while True:
        states = {
            str(pk): s for pk, s in Capture.objects.filter(pk__in=ids).values_list("pk", "state")
        }
        if not any(s in pending for s in states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(0.1)


def _terminal():
    from collectors_module.capture.models import TERMINAL_STATES

    return TERMINAL_STATES


# -- in-process: the pipeline functions ---------------------------------------------------------


def test_capture_is_ingested_as_one_input_with_provenance(alice, make_collector):
    collector = make_collector(alice, collect_outputs=True)
    capture = accept(collector, alice.user, "I love this", publish=False)

    assert process(capture.pk) == CaptureState.INGESTED

    capture.refresh_from_db()
    assert capture.state == CaptureState.INGESTED
    assert capture.payload is None
    assert capture.finished_at is not None
    assert capture.attempts == 1
    inp = Input.objects.get(app=alice.app)
    assert inp.public_id == destination_input_id(capture.pk) == capture.destination_input_id
    assert inp.text == "I love this"
    prov = inp.data["metadata"]["collector"]
    assert prov["collector_id"] == collector.public_id
    assert prov["capture_id"] == str(capture.pk)
    assert prov["caller"] == "alice"
    assert prov["source_model_version"] == collector.model_version_id
    assert prov["captured_at"]
    assert inp.annotations
    assert {c["id"] for c in inp.annotations[0]["data"]["concepts"]} >= {"positive"}


def test_source_outputs_are_not_annotated_without_collect_outputs(alice, make_collector):
    collector = make_collector(alice, collect_outputs=False)
    capture = accept(collector, alice.user, publish=False)
    assert process(capture.pk) == CaptureState.INGESTED
    assert Input.objects.get(app=alice.app).annotations == []


def test_pipeline_run_twice_for_one_capture_leaves_one_input(alice, make_collector):
    collector = make_collector(alice)
    capture = accept(collector, alice.user, publish=False)
    assert process(capture.pk) == CaptureState.INGESTED
    assert process(capture.pk) == CaptureState.INGESTED  # already done: a no-op
    assert process_batch([capture.pk, capture.pk]) == {}
    assert Input.objects.filter(app=alice.app).count() == 1
    capture.refresh_from_db()
    assert capture.attempts == 1


def test_retry_after_input_committed_finds_it_and_does_not_create_a_second(alice, make_collector):
    """A crash after the commit and a lease takeover: the input exists, the row says processing."""
    collector = make_collector(alice)
    capture = accept(collector, alice.user, publish=False)
    assert process(capture.pk) == CaptureState.INGESTED
    # as if the mark had not been recorded and the lease had expired
    Capture.objects.filter(pk=capture.pk).update(
        state=CaptureState.PROCESSING, lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert process(capture.pk) == CaptureState.INGESTED
    capture.refresh_from_db()
    assert capture.attempts == 2
    assert "input_duplicate" in capture.reason
    assert Input.objects.filter(app=alice.app).count() == 1


def test_worker_that_lost_its_lease_records_nothing(alice, make_collector):
    """Fencing: after a takeover, the first worker's insert and mark roll back."""
    from collectors_module.capture.worker import claim, commit, decide

    collector = make_collector(alice)
    capture = accept(collector, alice.user, publish=False)
    ((cid, attempts),) = claim([capture.pk]).claimed
    decision = decide(Capture.objects.get(pk=cid), attempts)
    # meanwhile the lease expired and another worker claimed the capture
    Capture.objects.filter(pk=cid).update(
        attempts=attempts + 1, lease_until=timezone.now() + timedelta(seconds=60)
    )
    assert commit([decision]) == []
    assert not Input.objects.exists()
    row = Capture.objects.get(pk=cid)
    assert row.state == CaptureState.PROCESSING
    assert row.attempts == attempts + 1


def test_batch_over_its_time_budget_hands_the_rest_back_uncounted(alice, make_collector, settings):
    settings.COLLECTORS_BATCH_TIME_BUDGET_SECONDS = 0
    collector = make_collector(alice)
    captures = [accept(collector, alice.user, f"budget {i}", publish=False) for i in range(4)]
    states = process_batch([c.pk for c in captures])
    assert sorted(states.values()) == [CaptureState.INGESTED] + [CaptureState.RETRY] * 3
    rows = Capture.objects.filter(pk__in=[c.pk for c in captures])
    assert {r.attempts for r in rows if r.state == CaptureState.RETRY} == {0}  # not an attempt
    assert all(r.next_attempt_at <= timezone.now() for r in rows)
    for _ in range(3):  # one per task under this budget
        process_batch([c.pk for c in captures])
    assert set(rows.values_list("state", flat=True)) == {CaptureState.INGESTED}
    assert Input.objects.filter(app=alice.app).count() == 4


def test_capture_held_by_a_live_lease_is_not_claimed_again(alice, make_collector):
    collector = make_collector(alice)
    capture = accept(collector, alice.user, publish=False)
    Capture.objects.filter(pk=capture.pk).update(
        state=CaptureState.PROCESSING,
        attempts=1,
        lease_until=timezone.now() + timedelta(seconds=60),
    )
    assert process(capture.pk) == CaptureState.PROCESSING
    assert not Input.objects.exists()


def test_revoked_key_fails_capture_with_52003_and_flags_collector(alice, make_collector):
    from collectors_module.accounts.services import key_revoke

    collector = make_collector(alice)
    capture = accept(collector, alice.user, publish=False)
    key_revoke(owner=alice.user, key_public_id=alice.key.public_id)

    assert process(capture.pk) == CaptureState.FAILED
    capture.refresh_from_db()
    assert capture.status_code == SC.COLLECTOR_POST_INPUT_FAILED == 52003
    assert "revoked" in capture.reason
    assert capture.payload is None
    collector.refresh_from_db()
    assert "revoked" in collector.flagged_reason
    assert collector.flagged_at is not None
    assert not Input.objects.exists()


def test_key_without_input_scopes_fails_capture(alice, make_collector, make_key):
    collector = make_collector(alice)
    # the key lost its scopes after the collector was created
    alice.key.scopes = ["Predict"]
    alice.key.save(update_fields=["scopes"])
    capture = accept(collector, alice.user, publish=False)
    assert process(capture.pk) == CaptureState.FAILED
    capture.refresh_from_db()
    assert capture.status_code == 52003
    assert "Inputs:Add" in capture.reason


def test_deactivating_keeps_and_delivers_what_was_accepted_before(alice, make_collector):
    from collectors_module.collectors.services import collector_deactivate

    collector = make_collector(alice)
    capture = accept(collector, alice.user, publish=False)
    collector_deactivate(app=alice.app, collector_id=collector.public_id)

    assert process(capture.pk) == CaptureState.INGESTED
    assert Input.objects.filter(public_id=destination_input_id(capture.pk)).exists()


def test_a_capture_made_after_the_deactivation_is_dropped(alice, make_collector):
    from datetime import timedelta

    from django.utils import timezone

    from collectors_module.collectors.services import collector_deactivate

    collector = make_collector(alice)
    collector_deactivate(app=alice.app, collector_id=collector.public_id)
    capture = accept(
        collector, alice.user, publish=False, created_at=timezone.now() + timedelta(seconds=1)
    )
    assert process(capture.pk) == CaptureState.DROPPED
    capture.refresh_from_db()
    assert capture.reason == "collector_inactive"
    assert capture.payload is None
    assert not Input.objects.exists()


def test_deactivating_with_discard_ends_the_pending_captures_counted(alice, make_collector):
    from collectors_module.capture import counters
    from collectors_module.capture.selectors import collector_stats
    from collectors_module.collectors.services import collector_deactivate

    collector = make_collector(alice)
    pending = [accept(collector, alice.user, f"pending {i}", publish=False) for i in range(3)]
    done = accept(collector, alice.user, "already done", publish=False)
    assert process(done.pk) == CaptureState.INGESTED
    _, discarded = collector_deactivate(
        app=alice.app, collector_id=collector.public_id, discard_pending=True
    )
    assert discarded == 3
    for capture in pending:
        capture.refresh_from_db()
        assert capture.state == CaptureState.DROPPED
        assert capture.reason.startswith("discarded")
        assert capture.payload is None
        assert process(capture.pk) == CaptureState.DROPPED  # a late task changes nothing
    counters.flush()
    stats = collector_stats(collector)
    assert stats["discarded"] == 3
    assert stats["drops_by_reason"]["discarded"] == 3
    assert Input.objects.count() == 1


def test_deleted_collector_capture_is_a_noop(alice, make_collector):
    from collectors_module.collectors.services import collectors_delete

    collector = make_collector(alice)
    capture = accept(collector, alice.user, publish=False)
    collectors_delete(app=alice.app, ids=[collector.public_id])
    assert process(capture.pk) is None
    assert not Input.objects.exists()


def test_capture_older_than_max_age_expires_at_claim(alice, make_collector, settings):
    settings.COLLECTORS_CAPTURE_MAX_AGE_SECONDS = 60
    collector = make_collector(alice)
    capture = accept(collector, alice.user, publish=False, payload=b"x")
    Capture.objects.filter(pk=capture.pk).update(created_at=timezone.now() - timedelta(seconds=61))
    assert process(capture.pk) == CaptureState.EXPIRED
    capture.refresh_from_db()
    assert capture.reason.startswith("expired")
    assert capture.payload is None
    assert not Input.objects.exists()


def test_capture_past_max_attempts_fails_with_reason(alice, make_collector, settings):
    settings.COLLECTORS_MAX_ATTEMPTS = 3
    collector = make_collector(alice)
    capture = accept(collector, alice.user, publish=False)
    Capture.objects.filter(pk=capture.pk).update(
        state=CaptureState.RETRY,
        attempts=3,
        reason="destination: boom",
        next_attempt_at=timezone.now(),
    )
    assert process(capture.pk) == CaptureState.FAILED
    capture.refresh_from_db()
    assert capture.reason.startswith("max_attempts")
    assert "boom" in capture.reason
    assert capture.attempts == 4
    assert not Input.objects.exists()


def test_retry_row_is_not_claimed_before_its_next_attempt(alice, make_collector):
    collector = make_collector(alice)
    capture = accept(collector, alice.user, publish=False)
    Capture.objects.filter(pk=capture.pk).update(
        state=CaptureState.RETRY, attempts=1, next_attempt_at=timezone.now() + timedelta(seconds=60)
    )
    assert process(capture.pk) == CaptureState.RETRY
    Capture.objects.filter(pk=capture.pk).update(next_attempt_at=timezone.now())
    assert process(capture.pk) == CaptureState.INGESTED


def test_a_row_written_before_the_binary_columns_is_still_ingested(alice, make_collector):
    collector = make_collector(alice, collect_outputs=True)
    capture = Capture.objects.create(
        collector=collector,
        caller=alice.user,
        request_id=uuid.uuid4().hex,
        input_data={"text": {"raw": "an older row"}},
        outputs=real_outputs(collector, "an older row"),
    )
    assert process(capture.pk) == CaptureState.INGESTED
    row = Input.objects.get(public_id=destination_input_id(capture.pk))
    assert row.text == "an older row"
    assert row.annotations[0]["data"]["concepts"]


def test_refused_input_fails_capture_with_52003(alice, make_collector):
    collector = make_collector(alice)
    # an input with neither text nor media: the destination refuses it
    capture = accept(collector, alice.user, publish=False)
    Capture.objects.filter(pk=capture.pk).update(input_pb=b"")
    assert process(capture.pk) == CaptureState.FAILED
    capture.refresh_from_db()
    assert capture.status_code == 52003
    assert "refused" in capture.reason


def test_sweeper_expires_old_and_selects_due_captures(alice, make_collector, run_sweep, settings):
    settings.COLLECTORS_CAPTURE_MAX_AGE_SECONDS = 3600
    collector = make_collector(alice)
    fresh = accept(collector, alice.user, publish=False)
    old = accept(collector, alice.user, publish=False)
    lease_gone = accept(collector, alice.user, publish=False)
    leased = accept(collector, alice.user, publish=False)
    not_due = accept(collector, alice.user, publish=False)
    now = timezone.now()
    Capture.objects.filter(pk=old.pk).update(created_at=now - timedelta(hours=2))
    Capture.objects.filter(pk=lease_gone.pk).update(
        state=CaptureState.PROCESSING, lease_until=now - timedelta(seconds=1)
    )
    Capture.objects.filter(pk=leased.pk).update(
        state=CaptureState.PROCESSING, lease_until=now + timedelta(seconds=60)
    )
    Capture.objects.filter(pk=not_due.pk).update(
        state=CaptureState.RETRY, next_attempt_at=now + timedelta(seconds=60)
    )
    result = run_sweep(publish=False)
    assert result["locked"]
    assert result["expired"] == 1
    assert set(result["due_ids"]) == {str(fresh.pk), str(lease_gone.pk)}
    assert result["reclaimed"] == 1
    assert Capture.objects.get(pk=old.pk).state == CaptureState.EXPIRED
    # touched: a second sweep within the quiet period leaves them alone
    assert run_sweep(publish=False, min_age=5).get("due_ids") is None


def test_sweeper_does_not_republish_accepted_rows_still_queued(alice, make_collector, settings):
    """An accepted row the relay published seconds ago is waiting in the broker: leave it."""
    from collectors_module.capture.sweeper import sweep

    settings.COLLECTORS_SWEEP_ACCEPTED_AGE_SECONDS = 30
    settings.COLLECTORS_SWEEP_MIN_AGE_SECONDS = 5
    collector = make_collector(alice)
    waiting = accept(collector, alice.user, publish=False)
    retry_due = accept(collector, alice.user, publish=False)
    now = timezone.now()
    Capture.objects.filter(pk=waiting.pk).update(updated_at=now - timedelta(seconds=10))
    Capture.objects.filter(pk=retry_due.pk).update(
        state=CaptureState.RETRY, next_attempt_at=now, updated_at=now - timedelta(seconds=10)
    )
    assert sweep(publish=False)["due_ids"] == [str(retry_due.pk)]
    Capture.objects.filter(pk=waiting.pk).update(updated_at=now - timedelta(seconds=31))
    assert sweep(publish=False)["due_ids"] == [str(waiting.pk)]


def test_system_check_refuses_visibility_timeout_below_time_limit_plus_lease(settings):
    from collectors_module.capture.checks import check_delivery_settings

    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    settings.CELERY_TASK_TIME_LIMIT = 10
    settings.COLLECTORS_LEASE_SECONDS = 12
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 20}
    assert [e.id for e in check_delivery_settings()] == ["collectors.E001"]
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 23}
    assert check_delivery_settings() == []
    settings.CELERY_TASK_REJECT_ON_WORKER_LOST = False
    assert [e.id for e in check_delivery_settings()] == ["collectors.E003"]


def test_enqueue_publish_returns_at_once_and_never_raises():
    started = time.perf_counter()
    for _ in range(1000):
        enqueue_publish(uuid.uuid4())
    assert time.perf_counter() - started < 0.5
    enqueue_publish(None)  # nonsense is swallowed too
    flush(5)


# -- post-queue workflow -------------------------------------------------------------------------


@pytest.fixture
def keep_positive(alice):
    """Post-queue workflow: the source sentiment model (reused) -> keep only 'positive' > 0.5."""
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.core.protojson import from_dict
    from collectors_module.inference.services import model_create
    from collectors_module.workflows.services import workflow_create

    pb = resources_pb2.Model(id="keep-positive", model_type_id="concept-thresholder")
    pb.output_info.params.update(
        {"concept_threshold_type": "GREATER_THAN", "filter_other_concepts": True}
    )
    pb.output_info.data.concepts.add(id="positive", value=0.5)
    model_create(app=alice.app, model_pb=pb)
    nodes = [
        {"id": "sent", "model": {"id": "sentiment", "user_id": "builtin", "app_id": "main",
                                 "model_version": {"id": "996e3c70d6372b1e7e3c10875ebd2b8b"}}},
        {"id": "keep", "model": {"id": "keep-positive"}, "node_inputs": [{"node_id": "sent"}]},
    ]  # fmt: skip
    workflow_create(
        app=alice.app,
        workflow_pb=from_dict({"id": "enrich", "nodes": nodes}, resources_pb2.Workflow),
    )
    return "enrich"


def test_post_queue_workflow_outputs_are_added_to_the_ingested_input(
    alice, make_collector, keep_positive
):
    collector = make_collector(alice, post_queue_workflow_id=keep_positive)
    capture = accept(collector, alice.user, "I love this wonderful, beautiful day!", publish=False)
    assert process(capture.pk) == CaptureState.INGESTED
    inp = Input.objects.get(app=alice.app)
    concepts = {c["id"]: c["value"] for c in inp.data.get("concepts", [])}
    assert concepts.get("positive", 0) > 0.5


def test_post_queue_workflow_with_no_output_filters_the_capture_by_node(
    alice, make_collector, keep_positive
):
    collector = make_collector(alice, post_queue_workflow_id=keep_positive)
    capture = accept(
        collector, alice.user, "This is awful, I hate it, terrible and sad.", publish=False
    )
    assert process(capture.pk) == CaptureState.FILTERED
    capture.refresh_from_db()
    assert capture.filtered_by == "keep"
    assert "keep" in capture.reason
    assert capture.payload is None
    assert not Input.objects.exists()


# -- real worker processes ----------------------------------------------------------------------


@pytest.mark.worker
def test_worker_ingests_accepted_captures(alice, make_collector, celery_workers):
    celery_workers.start(pool="prefork", concurrency=2)
    collector = make_collector(alice)
    captures = [accept(collector, alice.user, f"text {i}") for i in range(20)]
    states = wait_terminal([c.pk for c in captures])
    assert set(states.values()) == {CaptureState.INGESTED}
    assert Input.objects.filter(app=alice.app).count() == 20


@pytest.mark.worker
def test_task_delivered_twice_creates_one_input(alice, make_collector, celery_workers):
    from collectors_module.celery import app

    collector = make_collector(alice)
    capture = accept(collector, alice.user, publish=False)
    for _ in range(2):
        app.send_task("collectors.process_capture", kwargs={"capture_id": str(capture.pk)})
    publish_ids([capture.pk, capture.pk])  # and once more as a batch
    celery_workers.start(pool="prefork", concurrency=2)
    assert wait_terminal([capture.pk]) == {str(capture.pk): CaptureState.INGESTED}
    time.sleep(1.0)  # let the other deliveries run
    assert Input.objects.filter(app=alice.app).count() == 1
    assert Capture.objects.get(pk=capture.pk).attempts == 1


@pytest.mark.worker
def test_sweeper_republishes_a_capture_the_broker_never_got(
    alice, make_collector, celery_workers, run_sweep
):
    celery_workers.start()
    collector = make_collector(alice)
    capture = accept(collector, alice.user, publish=False)
    time.sleep(0.5)
    assert Capture.objects.get(pk=capture.pk).state == CaptureState.ACCEPTED
    assert run_sweep()["republished"] == 1
    assert wait_terminal([capture.pk]) == {str(capture.pk): CaptureState.INGESTED}


@pytest.mark.worker
def test_callers_prediction_is_ingested_and_another_callers_is_not(
    alice, bob, make_collector, api, celery_workers
):

    celery_workers.start(pool="prefork", concurrency=2)
    collector = make_collector(alice)
    for i in range(3):
        assert predict_text(api, alice.secret, f"alice says {i} good")["_http"] == 200
    for i in range(3):
        assert predict_text(api, bob.secret, f"bob says {i}")["_http"] == 200
    captures = list(Capture.objects.filter(collector=collector))
    assert len(captures) == 3
    assert {c.caller_id for c in captures} == {alice.user.pk}
    states = wait_terminal([c.pk for c in captures])
    assert set(states.values()) == {CaptureState.INGESTED}
    texts = sorted(Input.objects.filter(app=alice.app).values_list("text", flat=True))
    assert texts == [f"alice says {i} good" for i in range(3)]
    assert not Input.objects.filter(app=bob.app).exists()
