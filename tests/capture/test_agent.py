"""The spool and the capture agent: what a serving process spooled survives the death of either
process, is committed exactly once, waits while no agent runs and arrives when one returns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path

import pytest
from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.capture import agent as capture_agent
from collectors_module.capture import counters, spool
from collectors_module.capture.models import Capture, CaptureState
from collectors_module.capture.selectors import collector_stats
from collectors_module.collectors.services import collector_deactivate
from collectors_module.inputs.models import Input
from tests.support.capture import ROOT, predict_text

pytestmark = pytest.mark.worker


def record(collector_id: int = 1, text: str = "hello", caller_id=None, **kw) -> spool.Record:
    data = resources_pb2.Data(text=resources_pb2.Text(raw=text))
    output = resources_pb2.Output(data=resources_pb2.Data(concepts=[{"id": "positive"}]))
    fields = {
        "id": uuid.uuid4(),
        "collector_id": collector_id,
        "caller_id": caller_id,
        "created_at": time.time(),
        "request_id": uuid.uuid4().hex,
        "input_index": 0,
        "deferred": False,
        "data": data.SerializeToString(),
        "output": output.SerializeToString(),
    }
    fields.update(kw)
    return spool.Record(**fields)


def captured(collector) -> list[Capture]:
    return list(Capture.objects.filter(collector=collector).order_by("created_at"))


def wait_for(predicate, timeout: float = 15.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


# -- frames ------------------------------------------------------------------------------------


def test_a_frame_round_trips_every_field():
    r = record(caller_id=None, deferred=True, payload=b"\x89PNG...", request_id="req-é")
    frames, consumed, skipped = spool.parse(spool.encode(r))
    assert (consumed, skipped) == (len(spool.encode(r)), 0)
    assert spool.decode(frames[0].body) == r


def test_an_incomplete_frame_waits_for_the_rest():
    a, b = spool.encode(record(text="a")), spool.encode(record(text="b"))
    frames, consumed, skipped = spool.parse(a + b[:-3])
    assert [f.end for f in frames] == [len(a)]
    assert (consumed, skipped) == (len(a), 0)
    frames, consumed, _ = spool.parse(b, base=len(a))
    assert frames[0].offset == len(a)
    assert consumed == len(b)


def test_garbage_is_skipped_and_counted_up_to_the_next_good_frame():
    good = [spool.encode(record(text=t)) for t in ("one", "two")]
    bad = bytearray(spool.encode(record(text="flipped")))
    bad[-1] ^= 0xFF  # the CRC no longer matches
    buffer = good[0] + b"noise" + bytes(bad) + good[1]
    frames, consumed, skipped = spool.parse(buffer)
    texts = [resources_pb2.Data.FromString(spool.decode(f.body).data).text.raw for f in frames]
    assert texts == ["one", "two"]
    assert consumed == len(buffer)
    assert skipped == len(b"noise") + len(bad)


def test_a_truncated_last_frame_of_a_finished_segment_is_skipped():
    whole = spool.encode(record(text="whole"))
    cut = spool.encode(record(text="cut"))[:20]
    frames, consumed, skipped = spool.parse(whole + cut, final=True)
    assert len(frames) == 1
    assert consumed == len(whole + cut)
    assert skipped == len(cut)
    assert zlib.crc32(frames[0].body) == spool.HEADER.unpack_from(whole)[2]


def test_a_writer_refuses_beyond_its_cap_and_never_leaves_a_partial_frame(tmp_path):
    w = spool.SpoolWriter(tmp_path, segment_bytes=1 << 20, max_bytes=600)
    frame = spool.encode(record())
    w.append([frame])
    appended = 1
    while appended < 10:
        try:
            w.append([frame])
        except spool.SpoolFull:
            break
        appended += 1
    assert appended * len(frame) <= 600 < (appended + 1) * len(frame)
    [segment] = spool.segments(tmp_path)
    frames, consumed, skipped = spool.parse(segment.read_bytes(), final=True)
    assert skipped == 0
    assert consumed == segment.stat().st_size == len(frames) * len(frame)
    w.close()


def test_the_gil_holding_write_appends_and_reports_errors(tmp_path):
    """The writer's libc write (the GIL kept through it) appends what it is given and raises
    OSError like os.write does; a failed append leaves no partial frame behind."""
    path = tmp_path / "seg"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        assert spool.write_holding_gil(fd, b"abc") == 3
        assert spool.write_holding_gil(fd, b"") == 0
    finally:
        os.close(fd)
    assert path.read_bytes() == b"abc"
    with pytest.raises(OSError, match="Bad file descriptor") as exc:
        spool.write_holding_gil(fd, b"x")  # closed
    assert exc.value.errno == 9  # EBADF
    w = spool.SpoolWriter(tmp_path / "spool", segment_bytes=1 << 20, max_bytes=1 << 20)
    w.append([spool.encode(record())])
    os.close(w.fd)
    w.fd = os.open(os.devnull, os.O_RDONLY)  # a write that fails
    with pytest.raises(OSError, match="Bad file descriptor"):
        w.append([spool.encode(record())])
    w.close()


def test_a_writer_moves_to_a_new_segment_past_the_size_and_the_agent_deletes_old_ones(tmp_path):
    w = spool.SpoolWriter(tmp_path, segment_bytes=4096, max_bytes=1 << 30)
    frame = spool.encode(record(text="x" * 500))
    for _ in range(20):
        w.append([frame])
    names = [p.name for p in spool.segments(tmp_path)]
    assert len(names) >= 3
    assert names == sorted(names)
    w.close()


# -- a serving process and an agent in this process ----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_spooled_prediction_costs_no_query_and_the_agent_commits_it_once(
    api, alice, make_collector, spool_mode
):
    c = make_collector(alice)
    r = predict_text(api, alice.secret, "spooled, not inserted")
    assert r["status"]["code"] == 10000
    assert captured(c) == []  # the request thread only appended a frame
    assert counters.pending()[(c.pk, "spooled")] == 1
    capture_agent.drain(spool_mode)
    [cap] = captured(c)
    assert cap.state == CaptureState.ACCEPTED
    assert cap.input_json() == {"text": {"raw": "spooled, not inserted"}}
    assert (cap.caller_id, cap.request_id) == (alice.user.pk, r["status"]["req_id"])
    assert cap.output_json()["data"]["concepts"]
    again = capture_agent.drain(spool_mode)
    assert again.stats["records"] == 0
    assert len(captured(c)) == 1


@pytest.mark.django_db(transaction=True)
def test_frames_read_again_after_a_crash_are_not_inserted_twice(
    api, alice, make_collector, spool_mode
):
    c = make_collector(alice)
    for i in range(3):
        predict_text(api, alice.secret, f"once {i}")
    capture_agent.drain(spool_mode)
    (spool_mode / capture_agent.OFFSETS).unlink()  # as if the agent died before recording them
    again = capture_agent.drain(spool_mode)
    assert again.stats["records"] == 3
    assert again.stats["again"] == 3  # still accepted: published again, not inserted again
    assert again.stats["accepted"] == 0
    assert len(captured(c)) == 3


@pytest.mark.django_db(transaction=True)
def test_a_full_spool_drops_counted_and_the_prediction_is_unchanged(
    api, alice, make_collector, spool_mode, settings
):
    c = make_collector(alice)
    baseline = predict_text(api, alice.secret, "room for one")
    settings.COLLECTORS_SPOOL_MAX_BYTES = 1  # no agent has consumed anything
    r = predict_text(api, alice.secret, "room for one")
    assert r["outputs"][0]["data"] == baseline["outputs"][0]["data"]
    assert counters.pending()[(c.pk, "dropped:spool_full")] == 1
    capture_agent.drain(spool_mode)
    assert len(captured(c)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_full_spool_warns_once_not_once_per_prediction(
    api, alice, make_collector, spool_mode, settings, caplog, monkeypatch
):
    from collectors_module.capture import handoff

    monkeypatch.setattr(handoff, "_warned", {})  # no warning of an earlier test in the window
    c = make_collector(alice)
    settings.COLLECTORS_SPOOL_MAX_BYTES = 1
    with caplog.at_level("WARNING", logger="collectors.handoff"):
        for i in range(5):
            assert predict_text(api, alice.secret, f"full {i}")["status"]["code"] == 10000
    assert counters.pending()[(c.pk, "dropped:spool_full")] == 5
    warnings = [r.getMessage() for r in caplog.records if "spool full" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "1 capture(s) dropped as spool_full" in warnings[0]


@pytest.mark.django_db(transaction=True)
def test_spooled_captures_of_a_collector_deactivated_meanwhile_follow_its_rules(
    alice, make_collector, spool_mode
):
    kept = make_collector(alice, "kept")
    discarded = make_collector(alice, "discarded")
    w = spool.writer(spool_mode, segment_bytes=1 << 20, max_bytes=1 << 30)
    me = alice.user.pk
    w.append(
        [
            spool.encode(record(kept.pk, "before", me)),
            spool.encode(record(discarded.pk, "x", me)),
            spool.encode(record(kept.pk, "from a deleted account", 10**9)),
        ]
    )
    time.sleep(0.01)
    collector_deactivate(app=alice.app, collector_id="kept")
    collector_deactivate(app=alice.app, collector_id="discarded", discard_pending=True)
    w.append([spool.encode(record(kept.pk, "after", me, created_at=time.time()))])
    capture_agent.drain(spool_mode)
    assert [cap.input_json()["text"]["raw"] for cap in captured(kept)] == ["before"]
    assert captured(discarded) == []
    assert collector_stats(kept)["drops_by_reason"]["collector_inactive"] == 1
    assert collector_stats(kept)["drops_by_reason"]["caller_deleted"] == 1
    assert collector_stats(discarded)["drops_by_reason"]["discarded"] == 1


@pytest.mark.django_db(transaction=True)
def test_a_frame_bigger_than_the_agents_reads_is_committed(alice, make_collector, spool_mode):
    c = make_collector(alice)
    big = os.urandom(capture_agent.READ_CHUNK + 2**20)  # beyond the first read and the second
    w = spool.writer(spool_mode, segment_bytes=64 << 20, max_bytes=1 << 30)
    me = alice.user.pk
    w.append([spool.encode(record(c.pk, "small", me))])
    w.append([spool.encode(record(c.pk, "big", me, payload=big))])
    w.append([spool.encode(record(c.pk, "after", me))])
    capture_agent.drain(spool_mode)
    caps = {cap.input_json()["text"]["raw"]: cap for cap in captured(c)}
    assert sorted(caps) == ["after", "big", "small"]
    assert bytes(caps["big"].payload) == big


def test_parse_stops_after_max_frames_and_the_rest_parses_later():
    frames = [spool.encode(record(text=f"f{i}")) for i in range(5)]
    buffer = b"".join(frames)
    first, consumed, skipped = spool.parse(buffer, final=True, max_frames=2)
    assert (len(first), consumed, skipped) == (2, len(frames[0]) + len(frames[1]), 0)
    rest, consumed2, _ = spool.parse(buffer[consumed:], consumed, final=True)
    whole, _, _ = spool.parse(buffer, final=True)
    assert len(whole) == 5
    assert [f.body for f in first + rest] == [f.body for f in whole]
    assert consumed + consumed2 == len(buffer)
    assert spool.frame_size(buffer) == len(frames[0])
    assert spool.frame_size(b"garbage" * 10) == 0


@pytest.mark.django_db(transaction=True)
def test_a_backlog_of_many_batches_is_committed_once_each(alice, make_collector, spool_mode):
    c = make_collector(alice)
    w = spool.writer(spool_mode, segment_bytes=64 << 20, max_bytes=1 << 30)
    me = alice.user.pk
    n = capture_agent.conf.agent_batch() * 2 + 37
    for i in range(0, n, 100):
        w.append([spool.encode(record(c.pk, f"t{j}", me)) for j in range(i, min(n, i + 100))])
    done = capture_agent.drain(spool_mode, timeout=60)
    assert done.stats["batches"] == 3
    texts = [cap.input_json()["text"]["raw"] for cap in captured(c)]
    assert sorted(texts) == sorted(f"t{j}" for j in range(n))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("discard", [False, True])
def test_a_committed_frame_read_again_after_deactivation_is_not_dropped_again(
    alice, make_collector, spool_mode, discard
):
    c = make_collector(alice)
    w = spool.writer(spool_mode, segment_bytes=1 << 20, max_bytes=1 << 30)
    # Stamped later than the deactivation below, so its rules would refuse it if it were new.
    late = time.time() + 30
    w.append([spool.encode(record(c.pk, "committed before", alice.user.pk, created_at=late))])
    capture_agent.drain(spool_mode)
    (spool_mode / capture_agent.OFFSETS).unlink()  # the agent died before recording them
    collector_deactivate(app=alice.app, collector_id="c1", discard_pending=discard)
    again = capture_agent.drain(spool_mode)
    [cap] = captured(c)
    drops = collector_stats(c)["drops_by_reason"]
    assert again.stats["dropped"] == 0
    assert "collector_inactive" not in drops
    if discard:  # ended by the discard: nothing to publish again, counted once, by the discard
        assert (again.stats["again"], cap.state, drops["discarded"]) == (0, "dropped", 1)
    else:  # still accepted: published again
        assert (again.stats["again"], cap.state) == (1, CaptureState.ACCEPTED)


# -- the agent as its own process ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_agent_process_commits_and_a_worker_ingests_within_a_second(
    api, alice, make_collector, capture_agents, celery_workers
):
    c = make_collector(alice)
    capture_agents.start()
    celery_workers.start()
    started = time.monotonic()
    predict_text(api, alice.secret, "through the agent")
    got = wait_for(
        lambda: Input.objects.filter(app=alice.app, text="through the agent").exists(), 15
    )
    elapsed = time.monotonic() - started
    assert got, capture_agents.started[0].log()
    [cap] = captured(c)
    assert cap.state == CaptureState.INGESTED
    print(f"prediction to ingested input: {elapsed * 1000:.0f} ms")


@pytest.mark.django_db(transaction=True)
def test_with_no_agent_captures_wait_and_arrive_when_one_starts(
    api, alice, make_collector, capture_agents
):
    c = make_collector(alice)
    for i in range(5):
        assert predict_text(api, alice.secret, f"waiting {i}")["status"]["code"] == 10000
    time.sleep(0.3)
    assert captured(c) == []
    assert counters.pending()[(c.pk, "spooled")] == 5  # deferred, counted
    capture_agents.start()
    assert wait_for(lambda: len(captured(c)) == 5), capture_agents.started[0].log()


@pytest.mark.django_db(transaction=True)
def test_a_sigkilled_agent_loses_and_duplicates_nothing(api, alice, make_collector, capture_agents):
    c = make_collector(alice)
    for i in range(10):
        predict_text(api, alice.secret, f"in flight {i}")
    # Commits its second batch, then dies before recording how far it got.
    first = capture_agents.start(
        env={"COLLECTORS_AGENT_BATCH": "4", "COLLECTORS_FAULTS": "agent_after_commit:kill@2"},
        wait=False,
    )
    assert wait_for(lambda: not first.alive(), 15), first.log()
    assert first.proc.returncode == -signal.SIGKILL
    assert 4 <= len(captured(c)) < 10
    second = capture_agents.start()
    assert wait_for(lambda: len(captured(c)) == 10), second.log()
    time.sleep(0.3)
    rows = captured(c)
    assert len(rows) == len({(r.request_id, r.input_index) for r in rows}) == 10


@pytest.mark.django_db(transaction=True)
def test_a_second_agent_waits_as_a_standby_and_takes_over(
    api, alice, make_collector, capture_agents
):
    c = make_collector(alice)
    first = capture_agents.start()
    standby = capture_agents.start(wait=False)
    # Its Django start-up takes a moment (longer on a loaded machine) before it reaches the lock.
    assert wait_for(lambda: "waiting for the lock" in standby.log(), timeout=30), standby.log()
    time.sleep(0.5)
    assert "serving" not in standby.log()
    first.kill()
    standby.wait_serving()
    predict_text(api, alice.secret, "after the takeover")
    assert wait_for(lambda: len(captured(c)) == 1), standby.log()


@pytest.mark.django_db(transaction=True)
def test_what_a_sigkilled_serving_process_spooled_is_committed(
    alice, make_collector, capture_agents
):
    """A serving process predicts, spools and is SIGKILLed at once: nothing it spooled is lost."""
    c = make_collector(alice)
    script = (
        "import os, signal, django; django.setup();"
        "from django.test import Client;"
        "client = Client();"
        f"path = '/v2/users/builtin/apps/main/models/sentiment/outputs';"
        'body = \'{"inputs": [{"data": {"text": {"raw": "spooled then killed"}}}]}\';'
        "[client.post(path, body, content_type='application/json',"
        f" HTTP_AUTHORIZATION='Key {alice.secret}') for _ in range(3)];"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    env = capture_agents.workers.env(
        {
            "COLLECTORS_CAPTURE_HANDOFF": "spool",
            "COLLECTORS_SPOOL_DIR": str(capture_agents.spool),
            "ALLOWED_HOSTS": "testserver",
        }
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, timeout=60)
    assert result.returncode == -signal.SIGKILL
    agent = capture_agents.start()
    assert wait_for(lambda: len(captured(c)) == 3), agent.log()
    assert wait_for(lambda: spool.segments(capture_agents.spool) == [], 10)  # cleaned up
    assert not any(Path(capture_agents.spool).glob(".*.tmp"))
    assert os.path.exists(capture_agents.spool / capture_agent.OFFSETS)


def _scheduling(pid: int) -> set[tuple[int, int]]:
    """(nice, policy) of every thread of a process, from /proc."""
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        out.add((int(fields[16]), int(fields[38])))  # stat fields 19 (nice) and 41 (policy)
    return out


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("priority", "expected"), [("low", {(19, os.SCHED_OTHER)}), ("idle", {os.SCHED_IDLE})]
)
def test_the_agent_runs_every_thread_at_its_priority_and_still_commits(
    api, alice, make_collector, capture_agents, priority, expected
):
    c = make_collector(alice)
    agent = capture_agents.start(env={"COLLECTORS_AGENT_PRIORITY": priority})
    predict_text(api, alice.secret, f"at priority {priority}")
    wait_for(lambda: len(captured(c)) == 1)
    got = _scheduling(agent.proc.pid)
    assert (got if priority == "low" else {policy for _, policy in got}) == expected
