"""`check` finds every kind of inconsistency (made here with raw commands), `repair` fixes them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from click.testing import CliRunner

from redis_sessions import Folder, InvalidInput, SessionStore, StoreConfig, TutorContext
from redis_sessions.cli import cli
from redis_sessions.embedded import EmbeddedRedis
from redis_sessions.requests import RunScript
from redis_sessions.samples import chat_turn
from redis_sessions.scripts import ScriptName

from .conftest import Clock, data_keys


def make(store: SessionStore, user: str) -> str:
    sid = str(store.create_session(user))
    role, text, actions = chat_turn(2)
    store.append_message(sid, user, role, text, whiteboard_actions=actions)
    return sid


def test_a_consistent_store_checks_clean(store: SessionStore) -> None:
    for user in ("alice", "bob", "a{b}:c"):
        make(store, user)
    report = store.check(count=2)  # small SCAN batches: many rounds
    assert report.problems == {} and report.unknown_keys == 0
    assert report.scanned_keys >= 3 * 4


def test_every_kind_of_problem_is_found_and_repaired(store: SessionStore) -> None:
    keys = store.keyspace
    unindexed, no_expiry, gone, healthy = (make(store, "alice") for _ in range(4))
    store.client.zrem(keys.index("alice"), unindexed)
    live, _ = keys.expiry("alice")
    store.client.zrem(live, keys.expiry_member("alice", no_expiry))
    store.client.delete(keys.session("alice", gone))  # leaves index, expiry, msgs and wb behind
    store.client.set(f"{store.config.key_prefix}:stray", b"?")
    report = store.check()
    assert report.problems == {
        "unindexed": 1,
        "no-expiry": 1,
        "dangling-index": 1,
        "orphan-parts": 2,
        "dangling-expiry": 1,
    }
    assert report.unknown_keys == 1 and report.unrepaired == 6 and report.repaired == {}
    fixed = store.check(repair=True)
    assert sum(fixed.repaired.values()) == sum(fixed.problems.values()) and fixed.unrepaired == 0
    again = store.check()
    assert (
        again.problems == {} and again.unknown_keys == 1
    )  # unknown keys are reported, not touched
    assert {str(r.session_id) for r in store.list_user_sessions("alice")} == {
        unindexed,
        no_expiry,
        healthy,
    }
    assert not [
        k
        for k in store.client.scan_iter(match=f"{store.config.key_prefix}:*")
        if gone.encode() in k
    ]
    assert store.client.zscore(live, keys.expiry_member("alice", no_expiry)) is not None


def test_a_problem_fixed_by_a_racing_write_is_not_reported(store: SessionStore) -> None:
    sid = make(store, "alice")
    store.client.delete(store.keyspace.session("alice", sid))
    op = store._core.check()
    request = next(op)
    reply = store._execute(request)
    request = op.send(reply)
    # before the check confirms anything, a delete cleans the remains up
    store.delete_session(sid, "alice")
    try:
        while True:
            request = op.send(store._execute(request))
    except StopIteration as stop:
        report = stop.value
    assert report.problems == {}


def test_sweep_racing_writers_never_deletes_a_touched_session(real_server: EmbeddedRedis) -> None:
    """Writer threads touch half of the expired sessions, one by one, while a sweep runs.

    Whatever the interleaving, a touch that succeeded must keep its session (the sweep checks again
    inside its deleting script) and a touch that came too late must not bring one back.
    """
    clock = Clock()
    prefix = f"race{uuid.uuid4().hex[:6]}"
    config = StoreConfig(key_prefix=prefix)
    store = SessionStore.from_url(real_server.url, config=config, clock=clock)
    users = [f"user-{i}" for i in range(600)]
    sessions = {user: store.create_session(user) for user in users}
    clock.advance(days=31)  # every session is now expired ...
    hot = users[::2]
    touched: dict[str, bool] = {}
    start = threading.Barrier(5)

    def writer(chunk: list[str]) -> None:
        own = SessionStore.from_url(real_server.url, config=config, clock=clock)
        start.wait()
        for user in chunk:  # ... but these are touched at "now", spread over the sweep
            ctx = TutorContext(user_id=user, session_id=sessions[user])
            touched[user] = own.update_session_context(sessions[user], user, ctx)
            time.sleep(0.002)
        own.close()

    threads = [threading.Thread(target=writer, args=(hot[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    start.wait()
    report = store.cleanup_expired_sessions(now=clock.now)
    for t in threads:
        t.join()
    assert len(touched) == len(hot), "every writer ran to its end"
    survivors = {u for u in users if store.session_exists(sessions[u], u)}
    assert survivors == {u for u, ok in touched.items() if ok}
    assert report.deleted == len(users) - len(survivors)
    assert store.check().problems == {}
    store.close()
    print(f"touched in time: {len(survivors)}, too late: {len(hot) - len(survivors)}")


def test_a_sweep_killed_mid_way_leaves_nothing_half_deleted(real_server: EmbeddedRedis) -> None:
    prefix = f"kill{uuid.uuid4().hex[:6]}"
    clock = Clock()
    store = SessionStore.from_url(
        real_server.url, config=StoreConfig(key_prefix=prefix), clock=clock
    )
    users = [f"user-{i}" for i in range(3000)]
    for user in users:
        store.create_session(user)
    clock.advance(days=31)
    code = textwrap.dedent(f"""
        import datetime as dt, sys
        from redis_sessions import SessionStore, StoreConfig
        store = SessionStore.from_url({real_server.url!r}, config=StoreConfig(key_prefix={prefix!r}))
        def progress(done, total):
            print(done, flush=True)
        store.cleanup_expired_sessions(now=dt.datetime.fromisoformat({clock.now.isoformat()!r}),
                                       batch_size=1, progress=progress)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    child.stdout.readline()  # it is sweeping
    child.kill()
    child.wait()
    remaining = sum(len(store.list_user_sessions(u)) for u in users)
    assert 0 < remaining < len(users)  # killed part way
    assert store.check().problems == {}  # nothing half-deleted
    report = store.cleanup_expired_sessions(now=clock.now)
    assert report.deleted == remaining
    assert store.check().problems == {}
    assert not data_keys(store.client, prefix, match="{u:*")
    store.close()


# --------------------------------------------------------------------------- damage


class Damage(NamedTuple):
    """What a damage case planted: the damaged key, the problem it is, a word of the reason, the
    keys ``drop_corrupt`` deletes, and the problems that deleting it makes ``check`` repair too."""

    key: str
    problem: str
    reason: str
    gone: tuple[str, ...]
    consequences: dict[str, int]


def _replace(store: SessionStore, key: str, make_it: Callable[[], object]) -> None:
    store.client.delete(key)
    make_it()


def _record_as_string(store: SessionStore) -> Damage:
    sid = make(store, "alice")
    keys = store.keyspace
    record, msgs, wb = keys.session_keys("alice", sid)
    _replace(store, record, lambda: store.client.set(record, b"not a hash"))
    return Damage(record, "wrong-type", "a string, not a hash", (record, msgs, wb), {})


def _part_as(part: int, make_it: Callable[[Any, str], object], reason: str) -> DamageCase:
    def damage(store: SessionStore) -> Damage:
        key = store.keyspace.session_keys("alice", make(store, "alice"))[part]
        _replace(store, key, lambda: make_it(store.client, key))
        return Damage(key, "wrong-type", reason, (key,), {})

    return damage


def _index_as_string(store: SessionStore) -> Damage:
    make(store, "alice")  # a second session of alice, besides the healthy one: both unlisted
    key = store.keyspace.index("alice")
    _replace(store, key, lambda: store.client.set(key, b"not a zset"))
    return Damage(key, "wrong-type", "a string, not a zset", (), {"unindexed": 2})


def _live_expiry_as_hash(store: SessionStore) -> Damage:
    make(store, "alice")
    key, _ = store.keyspace.expiry("alice")
    _replace(store, key, lambda: store.client.hset(key, "field", b"not a zset"))
    return Damage(key, "wrong-type", "a hash, not a zset", (), {"no-expiry": 2})


def _folder_as_string(store: SessionStore) -> Damage:
    folder = store.put_folder("alice", Folder(id=str(uuid.uuid4()), name="algebra"))
    key = store.keyspace.folder("alice", folder.id)
    _replace(store, key, lambda: store.client.set(key, b"not a hash"))
    return Damage(key, "wrong-type", "a string, not a hash", (key,), {})


def _request_as_hash(store: SessionStore) -> Damage:
    key = store.keyspace.request("alice", "req-1")
    store.client.hset(key, "reply", b"not a string")
    return Damage(key, "wrong-type", "a hash, not a string", (key,), {})


def _undecodable(field: str, value: bytes, reason: str) -> DamageCase:
    def damage(store: SessionStore) -> Damage:
        sid = make(store, "alice")
        record, msgs, wb = store.keyspace.session_keys("alice", sid)
        store.client.hset(record, field, value)
        return Damage(record, "undecodable", reason, (record, msgs, wb), {})

    return damage


DamageCase = Callable[[SessionStore], Damage]
DAMAGES: dict[str, DamageCase] = {
    "record-as-string": _record_as_string,
    "msgs-as-string": _part_as(1, lambda c, k: c.set(k, b"not a hash"), "a string, not a hash"),
    "wb-as-list": _part_as(2, lambda c, k: c.rpush(k, b"not a hash"), "a list, not a hash"),
    "index-as-string": _index_as_string,
    "live-expiry-as-hash": _live_expiry_as_hash,
    "folder-as-string": _folder_as_string,
    "request-as-hash": _request_as_hash,
    "bad-json": _undecodable("c:lesson_plan", b"{not json", "JSON is malformed"),
    "bad-version": _undecodable("version", b"abc", "version is not an integer"),
    "bad-time": _undecodable("created_at", b"yesterday", "created_at or updated_at is not"),
    "wrong-owner": _undecodable("user_id", b"mallory", "names another user than its key"),
}


def raw_state(store: SessionStore, user: str, sid: str) -> dict[str, Any]:
    """A session as Redis holds it: its three hashes, and its index and expiry scores."""
    keys = store.keyspace
    record, msgs, wb = keys.session_keys(user, sid)
    live, ended = keys.expiry(user)
    member = keys.expiry_member(user, sid)
    return {
        "record": store.client.hgetall(record),
        "msgs": store.client.hgetall(msgs),
        "wb": store.client.hgetall(wb),
        "index": store.client.zscore(keys.index(user), sid),
        "expiry": (store.client.zscore(live, member), store.client.zscore(ended, member)),
    }


@pytest.mark.parametrize("case", list(DAMAGES.values()), ids=list(DAMAGES))
def test_damage_is_reported_left_alone_by_repair_and_dropped(
    store: SessionStore, case: DamageCase
) -> None:
    keys = store.keyspace
    assert keys.user_slot("alice") != keys.user_slot("bob")
    healthy = make(store, "alice")
    unindexed = make(store, "bob")  # an ordinary problem beside the damage
    store.client.zrem(keys.index("bob"), unindexed)
    before = {"alice": raw_state(store, "alice", healthy)}
    damage = case(store)
    damaged_type = store.client.type(damage.key)

    report = store.check(count=3)  # small batches: the damage and the rest meet in any order
    assert report.problems == {damage.problem: 1, "unindexed": 1}
    [example] = [e for e in report.examples if damage.key in e]
    assert damage.reason in example and repr(damage.key.encode()) not in example
    assert any(unindexed in e for e in report.examples)

    kept = store.check(repair=True)
    assert kept.problems == {damage.problem: 1, "unindexed": 1}
    assert kept.repaired == {"unindexed": 1} and kept.left == {damage.problem: 1}
    assert kept.unrepaired == 1
    assert store.client.type(damage.key) == damaged_type  # left alone
    before["bob"] = raw_state(store, "bob", unindexed)

    dropped = store.check(repair=True, drop_corrupt=True, count=3)
    assert dropped.problems == {damage.problem: 1, **damage.consequences}
    assert dropped.repaired == dropped.problems and dropped.unrepaired == 0
    assert dropped.drop_corrupt and dropped.left == {}
    for key in damage.gone:
        assert not store.client.exists(key), key
    if not damage.gone:  # an index: rebuilt from the records, as a sorted set
        assert store.client.type(damage.key) == b"zset"
    assert raw_state(store, "alice", healthy) == before["alice"]  # scores as they were
    assert raw_state(store, "bob", unindexed) == before["bob"]
    assert store.get_session(healthy, "alice") is not None
    assert healthy in {str(r.session_id) for r in store.list_user_sessions("alice")}

    again = store.check()
    assert again.problems == {} and again.unknown_keys == 0


def test_keys_that_are_not_utf8_are_unknown_keys(store: SessionStore) -> None:
    prefix = store.config.key_prefix
    store.client.set(f"{prefix}:".encode() + b"\xff\xfe", b"?")
    store.client.set(f"{prefix}:{{u:".encode() + b"\xff}:idx", b"?")
    make(store, "alice")
    report = store.check(repair=True, drop_corrupt=True)
    assert report.problems == {} and report.unknown_keys == 2
    assert f"unknown key {prefix}:\\xff\\xfe" in report.examples
    assert store.client.exists(f"{prefix}:".encode() + b"\xff\xfe")  # never touched


def test_drop_corrupt_needs_repair(store: SessionStore) -> None:
    with pytest.raises(InvalidInput, match="repair"):
        store.check(drop_corrupt=True)


def test_damage_in_the_way_of_repairs_is_dropped_first_and_they_follow(
    store: SessionStore,
) -> None:
    """Damage that blocks other fixes: a wrong-type record whose cascade would have to clean up a
    wrong-type index, and a dangling session whose cascade would have to clean up a wrong-type
    expiry index. Without drop_corrupt the run completes and says what is in the way; with it,
    one run leaves a clean store."""
    keys = store.keyspace
    assert keys.user_slot("alice") != keys.user_slot("carol")
    alice = [make(store, "alice") for _ in range(3)]
    record = keys.session("alice", alice[0])
    _replace(store, record, lambda: store.client.set(record, b"x"))
    _replace(store, keys.index("alice"), lambda: store.client.set(keys.index("alice"), b"x"))
    carol = [make(store, "carol") for _ in range(2)]
    store.client.delete(keys.session("carol", carol[0]))  # index entry, msgs and wb dangle
    live, _ = keys.expiry("carol")
    _replace(store, live, lambda: store.client.hset(live, "f", b"x"))

    report = store.check(repair=True, count=2)
    assert report.problems == {"wrong-type": 3, "dangling-index": 1, "orphan-parts": 2}
    assert report.repaired == {}
    assert sum("a key of the wrong type is in the way" in e for e in report.examples) == 3

    dropped = store.check(repair=True, drop_corrupt=True, count=2)
    remains = {"dangling-index", "orphan-parts"}  # whichever is met first takes all of it away
    assert {k: v for k, v in dropped.problems.items() if k not in remains} == {
        "wrong-type": 3,
        "unindexed": 2,  # alice's records, once her index is gone
        "no-expiry": 1,  # carol's live session, once her slot's expiry index is gone
    }
    assert set(dropped.problems) & remains and dropped.unrepaired == 0
    assert store.check().problems == {}
    assert {str(r.session_id) for r in store.list_user_sessions("alice")} == set(alice[1:])
    assert {str(r.session_id) for r in store.list_user_sessions("carol")} == {carol[1]}
    assert not list(store.client.scan_iter(match=f"{store.config.key_prefix}:*{carol[0]}*"))


def _drive_with(store: SessionStore, op: Any, before_script: Callable[[RunScript], None]) -> Any:
    """Run a core operation through the store, calling ``before_script`` before each script."""
    request = next(op)
    try:
        while True:
            if isinstance(request, RunScript):
                before_script(request)
            request = op.send(store._execute(request))
    except StopIteration as stop:
        return stop.value


@pytest.mark.parametrize(
    "rewrite, still_damaged", [(b"2", False), (b"also-bad", True)], ids=["fixed", "changed"]
)
def test_an_undecodable_record_rewritten_meanwhile_is_not_dropped(
    store: SessionStore, rewrite: bytes, still_damaged: bool
) -> None:
    sid = make(store, "alice")
    record = store.keyspace.session("alice", sid)
    store.client.hset(record, "version", b"abc")

    def rewrite_first(request: RunScript) -> None:  # between the check's read and its drop
        if request.args[0] == "undecodable":
            store.client.hset(record, "version", rewrite)

    report = _drive_with(store, store._core.check(repair=True, drop_corrupt=True), rewrite_first)
    assert report.problems == {}  # the record it read is not there any more: nothing to drop
    assert store.client.hget(record, "version") == rewrite
    assert store.client.zscore(store.keyspace.index("alice"), sid) is not None
    assert store.check().problems == ({"undecodable": 1} if still_damaged else {})


def test_a_wrong_type_key_rewritten_meanwhile_is_not_dropped(store: SessionStore) -> None:
    sid = make(store, "alice")
    messages = store.keyspace.session_keys("alice", sid)[1]
    good = store.client.hgetall(messages)
    _replace(store, messages, lambda: store.client.set(messages, b"x"))

    def restore_first(request: RunScript) -> None:
        if request.name is ScriptName.DROP_KEY:
            _replace(store, messages, lambda: store.client.hset(messages, mapping=good))

    report = _drive_with(store, store._core.check(repair=True, drop_corrupt=True), restore_first)
    assert report.problems == {}
    assert store.client.hgetall(messages) == good
    assert [m.turn_no for m in store.get_messages(sid, "alice")] == [1]


# --------------------------------------------------------------------------- the command line


def cli_check(url: str, prefix: str, *flags: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--url", url, "--prefix", prefix, "check", *flags])
    return result.exit_code, result.stdout, result.stderr


def test_cli_check_says_what_was_fixed_and_what_was_left(real_server: EmbeddedRedis) -> None:
    prefix = f"cli{uuid.uuid4().hex[:8]}"
    store = SessionStore.from_url(real_server.url, config=StoreConfig(key_prefix=prefix))
    keys = store.keyspace
    healthy, unindexed, damaged, bad = (make(store, "ada") for _ in range(4))
    store.client.zrem(keys.index("ada"), unindexed)
    record = keys.session("ada", damaged)
    _replace(store, record, lambda: store.client.set(record, b"x"))
    store.client.hset(keys.session("ada", bad), "created_at", b"yesterday")
    store.client.set(f"{prefix}:stray", b"?")

    code, out, err = cli_check(real_server.url, prefix)
    assert code == 1
    assert "records without an index entry: found 1, repaired 0, left 1\n" in out
    assert "keys holding another Redis type than the layout's: found 1, deleted 0, left 1" in out
    assert "records that cannot be decoded: found 1, deleted 0, left 1" in out
    assert out.count("left alone (use --drop-corrupt to delete)") == 2
    assert f"{record}: a string, not a hash" in out
    assert f"{keys.session('ada', bad)}: created_at or updated_at is not an ISO-8601 time" in out
    assert f"unknown key {prefix}:stray" in out and "b'" not in out
    assert "3 problem(s) left unrepaired" in err and "--repair --drop-corrupt" in err

    code, out, err = cli_check(real_server.url, prefix, "--drop-corrupt")
    assert code == 2 and "--drop-corrupt needs --repair" in err

    code, out, err = cli_check(real_server.url, prefix, "--repair")
    assert code == 1
    assert "records without an index entry: found 1, repaired 1, left 0" in out
    assert out.count("left alone (use --drop-corrupt to delete)") == 2
    assert f"{record}: a string, not a hash (left alone)" in out
    assert "2 problem(s) left unrepaired" in err and "--drop-corrupt" in err

    code, out, err = cli_check(real_server.url, prefix, "--repair", "--drop-corrupt")
    assert code == 0, err
    assert "keys holding another Redis type than the layout's: found 1, deleted 1, left 0" in out
    assert "records that cannot be decoded: found 1, deleted 1, left 0" in out
    assert "(deleted with its session)" in out and "all problems repaired" in out
    assert "use --drop-corrupt" not in out

    code, out, err = cli_check(real_server.url, prefix)
    assert code == 0 and out.endswith("consistent\n")
    assert "keys under the prefix that the store does not write: 1" in out  # never touched
    assert {str(r.session_id) for r in store.list_user_sessions("ada")} == {healthy, unindexed}
    store.client.delete(*store.client.scan_iter(match=f"{prefix}:*"))
    store.close()
