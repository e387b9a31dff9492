"""Key management and the audit log (file and callback)."""

from __future__ import annotations

import json
import threading

import pytest

import ssekit
from conftest import SSE


def test_key_lifecycle(engine):
    info = engine.create_key("k1", "test key", rotation_days=90)
    assert isinstance(info, dict) and "k1" in json.dumps(info)
    with pytest.raises(ssekit.KeyExistsError):
        engine.create_key("k1")
    auto = engine.create_key()
    assert auto
    assert engine.describe_key("k1") == engine.describe_key("k1")
    ids = json.dumps(engine.list_keys())
    assert "k1" in ids
    engine.rotate_key("k1")
    stored, meta, _ = engine.put("b", "o", b"data", {SSE: "aws:kms", f"{SSE}-aws-kms-key-id": "k1"})
    engine.disable_key("k1")
    with pytest.raises(ssekit.S3Error) as err:
        engine.plan_write("PutObject", "b", "o", {SSE: "aws:kms", f"{SSE}-aws-kms-key-id": "k1"})
    assert err.value.code == "KMS.DisabledException"
    with pytest.raises(ssekit.S3Error):
        engine.get("b", "o", stored, meta)
    engine.enable_key("k1")
    assert engine.get("b", "o", stored, meta) == b"data"
    with pytest.raises(ssekit.KeyInvalidStateError):
        engine.schedule_key_deletion("k1", 3)
    engine.schedule_key_deletion("k1", 7)
    with pytest.raises(ssekit.S3Error) as err:
        engine.get("b", "o", stored, meta)
    assert err.value.code == "KMS.KMSInvalidStateException"
    engine.cancel_key_deletion("k1")
    engine.enable_key("k1")
    assert engine.get("b", "o", stored, meta) == b"data"
    with pytest.raises(ssekit.KeyNotFoundError):
        engine.describe_key("absent")
    with pytest.raises(TypeError):
        engine.describe_key(None)
    with pytest.raises(ValueError):
        engine.schedule_key_deletion("k1", -1)


def test_audit_file(keydir, tmp_path):
    log = tmp_path / "audit.log"
    with ssekit.Engine.local(keydir, audit_file=log) as e:
        stored, meta, _ = e.put("b", "o", b"x", {SSE: "aws:kms"})
        e.get("b", "o", stored, meta)
    lines = log.read_text().splitlines()
    assert len(lines) >= 2 and all(json.loads(line) for line in lines)


def test_audit_callback_receives_lines_from_every_thread(keydir):
    lines, threads_seen = [], set()
    lock = threading.Lock()

    def audit(line: str) -> None:
        assert isinstance(line, str)
        with lock:
            lines.append(json.loads(line))
            # Names, not idents: an ident is reused once its thread has ended.
            threads_seen.add(threading.current_thread().name)

    with ssekit.Engine.local(keydir, audit_callback=audit) as e:
        def work():
            for _ in range(5):
                s, m, _ = e.put("b", "o", b"x", {SSE: "aws:kms"})
                e.get("b", "o", s, m)

        ts = [threading.Thread(target=work) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert len(lines) >= 40 and len(threads_seen) == 4
    assert "arn:aws:s3:::b/o" in json.dumps(lines)


def test_audit_callback_exception_fails_the_key_use(keydir):
    state = {"fail": True, "calls": 0}

    def audit(line: str) -> None:
        state["calls"] += 1
        if state["fail"]:
            raise RuntimeError("log sink is down")

    with ssekit.Engine.local(keydir, audit_callback=audit) as e:
        with pytest.raises(ssekit.Error) as err:
            e.plan_write("PutObject", "b", "o", {SSE: "aws:kms"})
        # The Python exception that failed the delivery is chained to the error the call raised.
        assert isinstance(err.value.__cause__, RuntimeError), err.value
        assert "audit" in err.value.message
        with pytest.raises(ssekit.Error) as err:
            e.create_key("k2")
        assert isinstance(err.value.__cause__, RuntimeError)
        state["fail"] = False
        stored, meta, _ = e.put("b", "o", b"y", {SSE: "aws:kms"})
        assert e.get("b", "o", stored, meta) == b"y"
    assert state["calls"] >= 3


def test_abi_bug_audit_failure_codes(keydir):
    """ABI BUG (reported): docs/S3.md says a request whose audit line cannot be written fails with
    503 ServiceUnavailable; the plans answer S3 500 InternalError ("the object's keys failed:
    audit log: ..."). And the key-management calls return SSEKIT_RESULT_IO where the header has
    SSEKIT_RESULT_AUDIT ("The audit log could not be written: the key was not used")."""

    def audit(line: str) -> None:
        raise RuntimeError("log sink is down")

    problems = []
    with ssekit.Engine.local(keydir, audit_callback=audit) as e:
        try:
            e.plan_write("PutObject", "b", "o", {SSE: "aws:kms"})
            problems.append("plan_write: no error")
        except ssekit.S3Error as x:
            if (x.code, x.status) != ("ServiceUnavailable", 503):
                problems.append(f"plan_write: {x.status} {x.code}, expected 503 ServiceUnavailable")
        try:
            e.create_key("k2")
            problems.append("create_key: no error")
        except ssekit.AuditError:
            pass
        except ssekit.Error as x:
            problems.append(f"create_key: {x.name}, expected SSEKIT_RESULT_AUDIT")
    assert not problems, problems


def test_audit_callback_calling_back_into_its_engine_does_not_deadlock(keydir):
    box = {}

    def audit(line: str) -> None:
        box["engine"].list_keys()  # refused in Python: the library holds the log's lock

    with ssekit.Engine.local(keydir, audit_callback=audit) as e:
        box["engine"] = e
        with pytest.raises(ssekit.Error) as err:
            e.plan_write("PutObject", "b", "o", {SSE: "aws:kms"})
        assert isinstance(err.value.__cause__, ssekit.InvalidStateError)
        assert "deadlock" in str(err.value.__cause__)


def test_audit_continue(keydir):
    lines = []
    with ssekit.Engine.local(keydir, audit_callback=lines.append, audit_continue=(41, bytes(32))) as e:
        e.put("b", "o", b"x", {SSE: "aws:kms"})
    assert json.loads(lines[0])["seq"] == 41
    with pytest.raises(ValueError):
        ssekit.Engine.local(keydir, audit_continue=(1, bytes(32)))
