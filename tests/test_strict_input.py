"""Strict input (issue #12): unknown keys, NaN and infinity, and nesting deeper than MAX_DEPTH are
refused with InvalidInput naming the path, before anything is written; validate_session_context
reports the same errors as the writes; records already stored stay lenient (a newer version's
fields still read)."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redis_sessions import (
    InvalidInput,
    SessionStore,
    TutorContext,
    codec,
    message_codec,
    write_codec,
)
from redis_sessions.models import UserConceptMastery
from redis_sessions.samples import chat_turn, realistic_context
from redis_sessions.validation import (
    MAX_DEPTH,
    _scan_json,
    _TooDeep,
    first_too_deep,
    validate_context,
)

from .conftest import data_keys

SID = "8c7e3a4e-1b2f-4c5d-9e6f-0a1b2c3d4e5f"
USER = "alice"
NAN, INF = math.nan, math.inf
#: how deep a few seconds of work may build: past msgspec's recursion limit (about 1,000) too
DEPTHS = [2_000, 100_000]


def nested(levels: int, leaf: Any = 1) -> Any:
    """``levels`` arrays and objects, one in another (the outermost an array, then alternating:
    ``[{"k": [{"k": ...}]}]``), built without recursion."""
    value = leaf
    for j in reversed(range(levels)):
        value = {"k": value} if j % 2 else [value]
    return value


def nested_json(levels: int, leaf: str = "1") -> str:
    """The JSON text of ``nested(levels)``, built without recursion."""
    opens = ['{"k":' if j % 2 else "[" for j in range(levels)]
    closes = ["}" if j % 2 else "]" for j in reversed(range(levels))]
    return "".join(opens) + leaf + "".join(closes)


def base(**fields: Any) -> dict[str, Any]:
    return {"user_id": USER, "session_id": SID, **fields}


def written(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    """The validation errors an InvalidInput of a write carries (after its "invalid ...: ")."""
    message = str(exc.value)
    for prefix in ("invalid initial_context: ", "invalid context: ", "message cannot be stored: "):
        if message.startswith(prefix):
            return message[len(prefix) :].split("; ")
    raise AssertionError(f"not a validation error: {message}")


# ---------------------------------------------------------------- unknown keys


def test_an_unknown_key_is_refused_with_its_path_and_the_near_name() -> None:
    result = validate_context(base(sesion_goal="x"))
    assert result.errors == ["$.sesion_goal: unknown field, did you mean 'session_goal'?"]
    deep = base(user_model_state={"concepts": {"x": {"alphaa": 2}}})
    assert validate_context(deep).errors == [
        "$.user_model_state.concepts[\"x\"].alphaa: unknown field, did you mean 'alpha'?"
    ]


def test_unknown_keys_everywhere_in_every_input_form() -> None:
    data = base(
        colour="red",
        lesson_plan={
            "title": "t",
            "description": "d",
            "target_audience": "a",
            "prerequisites": [],
            "sections": [
                {
                    "title": "s",
                    "objectives": [{"title": "o", "description": "d", "priority": 1, "prio": 2}],
                    "estimated_duration_minutes": 5,
                    "concepts_to_cover": [],
                    "is_optional": False,
                }
            ],
            "total_estimated_duration_minutes": 5,
        },
        current_focus_objective={
            "topic": "t",
            "learning_goal": "g",
            "priority": 1,
            "target_mastery": 0.9,
            "target mastery": 1,
        },
    )
    expected = [
        "$.colour: unknown field",
        "$.lesson_plan.sections[0].objectives[0].prio: unknown field, did you mean 'priority'?",
        "$.current_focus_objective[\"target mastery\"]: unknown field, did you mean 'target_mastery'?",
    ]
    text = json.dumps(data)
    for form in (data, text, text.encode()):
        assert sorted(validate_context(form).errors) == sorted(expected)


def test_known_keys_still_validate_and_normalize() -> None:
    result = validate_context(json.dumps(base(session_goal="g", user_model_state={})))
    assert result.valid and result.context is not None
    assert result.context.session_goal == "g"


# ---------------------------------------------------------------- NaN and infinity


def finite_cases() -> list[tuple[dict[str, Any], str, Any, str]]:
    """(context fields of a mapping, the same as an attribute of a TutorContext and its value, the
    path of the one problem)."""
    focus = {"topic": "t", "learning_goal": "g", "priority": 1, "target_mastery": INF}
    return [
        (
            {"user_model_state": {"overall_progress": NAN}},
            "user_model_state.overall_progress",
            NAN,
            "$.user_model_state.overall_progress",
        ),
        (
            {"user_model_state": {"learning_pace_factor": -INF}},
            "user_model_state.learning_pace_factor",
            -INF,
            "$.user_model_state.learning_pace_factor",
        ),
        (
            {"current_focus_objective": focus},
            "current_focus_objective.target_mastery",
            INF,
            "$.current_focus_objective.target_mastery",
        ),
        (
            {"last_event": {"scores": [0.5, {"deep": [NAN]}]}},
            "last_event",
            {"scores": [0.5, {"deep": [NAN]}]},
            '$.last_event["scores"][1]["deep"][0]',
        ),
        (
            {"user_model_state": {"pending_interaction_details": {"x": (1, INF)}}},
            "user_model_state.pending_interaction_details",
            {"x": (1, INF)},
            '$.user_model_state.pending_interaction_details["x"][1]',
        ),
        (
            {"history": [{"role": "user", "content": "c", "score": NAN}]},
            "history",
            [{"role": "user", "content": "c", "score": NAN}],
            '$.history[0]["score"]',
        ),
    ]


@pytest.mark.parametrize(("fields", "attribute", "value", "path"), finite_cases())
def test_nan_and_infinity_are_refused_with_their_path(
    fields: dict[str, Any], attribute: str, value: Any, path: str
) -> None:
    instance = realistic_context(USER, SID)
    _set(attribute, value)(instance)
    for data in (base(**fields), instance):
        errors = validate_context(data).errors
        assert len(errors) == 1 and errors[0].startswith(f"{path}: expected a finite number, got")


def test_json_numbers_beyond_the_float_range_are_infinity_and_refused() -> None:
    text = json.dumps(base(last_event={"a": 1})).replace('"a": 1', '"a": [1e999, -1e999]')
    assert validate_context(text).errors == [
        '$.last_event["a"][0]: expected a finite number, got inf (JSON has no NaN or infinity)',
        '$.last_event["a"][1]: expected a finite number, got -inf (JSON has no NaN or infinity)',
    ]
    typed = '{"user_id": "u", "session_id": "%s", "user_model_state": {"overall_progress": 1e400}}'
    assert validate_context(typed % SID).errors == [
        "$.user_model_state.overall_progress: expected a finite number, got inf"
        " (JSON has no NaN or infinity)"
    ]


def test_msgspec_itself_refuses_non_finite_floats_in_float_fields() -> None:
    """The models say so too (Meta bounds), wherever msgspec converts or decodes."""
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(base(user_model_state={"overall_progress": NAN}), TutorContext)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            b'{"user_id":"u","session_id":"%s","user_model_state":{"learning_pace_factor":1e999}}'
            % SID.encode(),
            type=TutorContext,
        )


# ---------------------------------------------------------------- nesting


def test_the_bound_is_exact() -> None:
    # the context is level 1 and last_event level 2: it may hold MAX_DEPTH - 2 more levels
    assert validate_context(base(last_event={"x": nested(MAX_DEPTH - 2)})).valid
    errors = validate_context(base(last_event={"x": nested(MAX_DEPTH - 1)})).errors
    steps = '["x"]' + "".join('["k"]' if i % 2 else "[0]" for i in range(MAX_DEPTH - 2))
    assert errors == [
        f"$.last_event{steps}: nested deeper than {MAX_DEPTH} levels of objects and arrays"
    ]
    assert message_codec.encode_message("user", "t", nested(MAX_DEPTH), None, _now())
    with pytest.raises(InvalidInput, match="nested deeper than 64"):
        message_codec.encode_message("user", "t", nested(MAX_DEPTH + 1), None, _now())


@pytest.mark.parametrize("levels", DEPTHS)
def test_deep_nesting_is_refused_in_every_form_never_a_recursion_error(levels: int) -> None:
    where = '$.user_model_state.pending_interaction_details["a"][0]["k"][0]'
    data = base(user_model_state={"pending_interaction_details": {"a": nested(levels)}}, state=1)
    text = json.dumps(base(user_model_state={"pending_interaction_details": {"a": "@"}}, state=1))
    text = text.replace('"@"', nested_json(levels))
    instance = realistic_context(USER, SID)
    instance.user_model_state.pending_interaction_details = {"a": nested(levels)}
    instance.state = 1  # type: ignore[assignment]
    for form in (data, text, text.encode(), instance):
        errors = sorted(validate_context(form).errors)
        assert len(errors) == 2, form.__class__
        assert errors[1].startswith(where) and errors[1].endswith(
            f"nested deeper than {MAX_DEPTH} levels of objects and arrays"
        )
        assert errors[0] == "$.state: expected str, got int"  # the other fields are checked


def test_a_cycle_is_too_deep_not_a_hang() -> None:
    loop: dict[str, Any] = {}
    loop["again"] = loop
    errors = validate_context(base(last_event=loop)).errors
    assert len(errors) == 1 and errors[0].startswith('$.last_event["again"]["again"]')


def test_json_too_deep_for_msgspec_that_is_not_a_context() -> None:
    assert validate_context("[" * 5000 + "]" * 5000).errors == ["$: expected object, got array"]
    assert validate_context('{"last_event":' + "[" * 5000).errors == [
        "$: not valid JSON: the outermost object is not closed"
    ]


_leaf = st.one_of(st.integers(), st.text(alphabet='ab[]{}",:\\ ', max_size=4), st.none())


def _deepen(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=3) | st.dictionaries(
        st.text(alphabet='ab[]{}",:\\', max_size=3), children, max_size=3
    )


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet="abc[", min_size=1, max_size=3),
        st.recursive(_leaf, _deepen, max_leaves=40),
        max_size=4,
    ),
    st.integers(min_value=MAX_DEPTH - 4, max_value=MAX_DEPTH + 4),
)
def test_the_json_scan_finds_what_the_walk_finds(doc: dict[str, Any], levels: int) -> None:
    """The scan of JSON too deep to decode agrees with the walk of the decoded value: the same
    members, the same first too-deep spot of each (brackets, quotes and escapes inside strings)."""
    doc = {**doc, "deep": [nested(levels, leaf='a]}"\\'), {"x": nested(levels)}]}
    members = _scan_json(json.dumps(doc))
    assert not isinstance(members, str)
    assert list(members) == list(doc)
    for key, value in doc.items():
        steps = first_too_deep(value, 2)
        if steps is None:
            assert members[key] == value
        else:
            assert members[key] == _TooDeep(steps)


def _now() -> dt.datetime:
    return dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)


# ---------------------------------------------------------------- stored records stay lenient


def test_a_record_from_a_newer_version_still_reads(store: SessionStore) -> None:
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    key = store.keyspace.session(USER, sid)
    ums = json.loads(store.client.hget(key, "c:user_model_state"))
    ums["mood"] = "curious"  # a key a newer version added inside a field
    ums["concepts"]["concept-01"]["streak"] = 3
    store.client.hset(
        key,
        mapping={
            "c:user_model_state": json.dumps(ums),
            "c:future_field": '{"x": 1}',  # a field a newer version added
        },
    )
    store._core.cache.clear()
    context = store.get_session_context(sid, USER)
    assert context is not None and context.user_model_state.concepts["concept-01"].alpha == 2
    # what Redis holds reads; the same JSON given as input is refused, naming what is unknown
    stored_json = codec.lean_json(store.client.hgetall(key))
    assert codec.decode_context(stored_json) == context
    assert sorted(store.validate_session_context(stored_json).errors) == [
        '$.user_model_state.concepts["concept-01"].streak: unknown field',
        "$.user_model_state.mood: unknown field",
    ]
    session = store.get_session(sid, USER)
    assert session is not None
    assert [info.session_id for info in store.list_user_sessions(USER)] == [sid]
    # it can be written again from what was read: the read-back context is not input
    context.session_goal = "new goal"
    assert store.update_session_context(sid, USER, context)
    assert store.client.hget(key, "c:future_field") == b'{"x": 1}'
    fields = store.client.hgetall(key)
    assert codec.decode_context(codec.lean_json(fields)).session_goal == "new goal"
    result = store.validate_session_context(json.loads(codec.lean_json(fields)) | {"mood": "x"})
    assert result.errors == ["$.mood: unknown field"]


def test_nan_is_refused_even_where_its_json_equals_what_is_stored() -> None:
    """NaN encodes as null: a field equal, as JSON, to the cached record is still looked at."""
    ctx = realistic_context(USER, SID)
    ctx.user_model_state.pending_interaction_details = {"hint": None}
    options: dict[str, Any] = {"user_id": USER, "session_id": SID, "max_bytes": 1 << 20}
    stored = write_codec.encode_context(ctx, **options)
    ctx.user_model_state.pending_interaction_details = {"hint": NAN}
    assert codec._encoder.encode(ctx.user_model_state) == stored[b"c:user_model_state"]
    with pytest.raises(
        InvalidInput, match=r'pending_interaction_details\["hint"\]: expected a fin'
    ):
        write_codec.encode_context(ctx, stored=stored, **options)


# ---------------------------------------------------------------- writes: refused, nothing written


#: What a write is given: (store, the existing session) -> a mapping (create_session) or a
#: TutorContext (create_session or update_session_context)
Given = Callable[[SessionStore, str], "dict[str, Any] | TutorContext"]


def _mapping(fields: dict[str, Any]) -> Given:
    return lambda store, sid: fields


def _new(change: Callable[[TutorContext], None]) -> Given:
    def given(store: SessionStore, sid: str) -> TutorContext:
        ctx = realistic_context(USER)
        change(ctx)
        return ctx

    return given


def _read(change: Callable[[TutorContext], None]) -> Given:
    def given(store: SessionStore, sid: str) -> TutorContext:
        ctx = store.get_session_context(sid, USER)  # cached: the update sends what changed
        assert ctx is not None
        change(ctx)
        return ctx

    return given


def _set(path: str, value: Any) -> Callable[[TutorContext], None]:
    """Set an attribute path of a context (``user_model_state.overall_progress``)."""

    def change(ctx: TutorContext) -> None:
        *parents, last = path.split(".")
        target: Any = ctx
        for name in parents:
            target = getattr(target, name)
        setattr(target, last, value)

    return change


#: case -> (create or update, what it is given, what the error says)
CONTEXT_WRITES: dict[str, tuple[str, Given, str]] = {
    "create: unknown key": (
        "create",
        _mapping({"sesion_goal": "x"}),
        "$.sesion_goal: unknown field, did you mean 'session_goal'?",
    ),
    "create: unknown nested key": (
        "create",
        _mapping({"user_model_state": {"concepts": {"x": {"alphaa": 1}}}}),
        "$.user_model_state.concepts[\"x\"].alphaa: unknown field, did you mean 'alpha'?",
    ),
    "create: NaN in a float field": (
        "create",
        _mapping({"user_model_state": {"overall_progress": NAN}}),
        "$.user_model_state.overall_progress: expected a finite number, got NaN",
    ),
    "create: inf in last_event": (
        "create",
        _mapping({"last_event": {"a": [{"b": INF}]}}),
        '$.last_event["a"][0]["b"]: expected a finite number, got inf',
    ),
    "create: NaN in a TutorContext's float field": (
        "create",
        _new(_set("user_model_state.learning_pace_factor", NAN)),
        "$.user_model_state.learning_pace_factor: expected a finite number, got NaN",
    ),
    "create: -inf in a TutorContext's target_mastery": (
        "create",
        _new(_set("current_focus_objective.target_mastery", -INF)),
        "$.current_focus_objective.target_mastery: expected a finite number, got -inf",
    ),
    "create: NaN in a TutorContext's pending details": (
        "create",
        _new(_set("user_model_state.pending_interaction_details", {"n": [NAN]})),
        '$.user_model_state.pending_interaction_details["n"][0]: expected a finite number',
    ),
    "update: NaN in a float field": (
        "update",
        _read(_set("user_model_state.overall_progress", NAN)),
        "$.user_model_state.overall_progress: expected a finite number, got NaN",
    ),
    "update: inf in last_event": (
        "update",
        _read(_set("last_event", {"a": {"b": [1, INF]}})),
        '$.last_event["a"]["b"][1]: expected a finite number, got inf',
    ),
    "update: NaN in pending details": (
        "update",
        _read(_set("user_model_state.pending_interaction_details", {"x": NAN})),
        '$.user_model_state.pending_interaction_details["x"]: expected a finite number',
    ),
    "update: NaN where a str belongs": (
        "update",
        _read(_set("state", NAN)),
        "$.state: expected str, got float",
    ),
}
for _levels in DEPTHS:
    CONTEXT_WRITES |= {
        f"create: {_levels} levels in a mapping": (
            "create",
            _mapping({"last_event": {"x": nested(_levels)}}),
            '$.last_event["x"][0]["k"][0]',
        ),
        f"create: {_levels} levels in a TutorContext": (
            "create",
            _new(_set("last_event", {"x": nested(_levels)})),
            '$.last_event["x"][0]["k"][0]',
        ),
        f"update: {_levels} levels in pending details": (
            "update",
            _read(_set("user_model_state.pending_interaction_details", {"x": nested(_levels)})),
            '$.user_model_state.pending_interaction_details["x"][0]["k"]',
        ),
        f"update: {_levels} levels where a str belongs": (
            "update",
            _read(_set("session_goal", nested(_levels))),
            '$.session_goal[0]["k"][0]',
        ),
    }


def _record_state(store: SessionStore, sid: str) -> tuple[Any, ...]:
    """Everything of this test's user in Redis: its keys, the session record, the index."""
    keys = data_keys(store.client, store.config.key_prefix)
    record = store.client.hgetall(store.keyspace.session(USER, sid))
    return keys, record, [info.session_id for info in store.list_user_sessions(USER)]


@pytest.mark.parametrize("case", list(CONTEXT_WRITES))
def test_a_refused_context_write_writes_nothing_and_says_what_validation_says(
    store: SessionStore, case: str
) -> None:
    kind, given, expected = CONTEXT_WRITES[case]
    sid = store.create_session(USER, initial_context=realistic_context(USER))
    store.append_message(sid, USER, "user", "hello")
    before = _record_state(store, sid)
    data = given(store, sid)
    with pytest.raises(InvalidInput) as refused:
        if kind == "create":
            store.create_session(USER, initial_context=data)
        else:
            assert isinstance(data, TutorContext)
            store.update_session_context(sid, USER, data)
    assert expected in str(refused.value)
    assert "levels" not in case or str(refused.value).endswith(
        f"nested deeper than {MAX_DEPTH} levels of objects and arrays"
    )
    assert _record_state(store, sid) == before  # no new record or index entry, no change
    store._core.cache.clear()
    assert _record_state(store, sid) == before
    # validate_session_context says the same as the write, for the same input
    if isinstance(data, dict):  # create_session fills in the ids
        data = {**data, "user_id": USER, "session_id": SID}
    errors = store.validate_session_context(data).errors
    for error in written(refused):
        assert error in errors, (error, errors)


MESSAGE_WRITES: dict[str, tuple[dict[str, Any], str]] = {
    "NaN in the payload": (
        {"payload": {"scores": [1.0, NAN]}},
        'payload["scores"][1]: expected a finite number, got NaN',
    ),
    "inf payload": ({"payload": INF}, "payload: expected a finite number, got inf"),
    "-inf in whiteboard actions": (
        {"whiteboard_actions": [{"type": "ADD_OBJECTS", "objects": [{"xPct": -INF}]}]},
        'whiteboard_actions[0]["objects"][0]["xPct"]: expected a finite number, got -inf',
    ),
}
for _levels in DEPTHS:
    MESSAGE_WRITES |= {
        f"{_levels} levels of payload": (
            {"payload": nested(_levels)},
            'payload[0]["k"][0]',
        ),
        f"{_levels} levels of whiteboard actions": (
            {"whiteboard_actions": [{"type": "ADD_OBJECTS", "objects": nested(_levels)}]},
            'whiteboard_actions[0]["objects"][0]["k"]',
        ),
    }


@pytest.mark.parametrize("case", list(MESSAGE_WRITES))
def test_a_refused_message_writes_nothing(store: SessionStore, case: str) -> None:
    options, expected = MESSAGE_WRITES[case]
    sid = store.create_session(USER)
    role, text, actions = chat_turn(2)
    assert store.append_message(sid, USER, role, text, whiteboard_actions=actions) == 1
    before = _record_state(store, sid)
    with pytest.raises(InvalidInput, match=r"^message cannot be stored: ") as refused:
        store.append_message(sid, USER, "assistant", "drawing", **options)
    assert expected in str(refused.value)
    if "levels" in case:
        assert str(refused.value).endswith(
            f"nested deeper than {MAX_DEPTH} levels of objects and arrays"
        )
    assert _record_state(store, sid) == before  # turns, updated_at, messages and snapshots
    assert [m.turn_no for m in store.get_messages(sid, USER)] == [1]
    assert store.append_message(sid, USER, "user", "next", payload={"ok": 0.5}) == 2


def test_validation_reports_every_problem_a_write_would_stop_at(store: SessionStore) -> None:
    """A write stops at its first problem; validation lists all, the write's among them."""
    ctx = realistic_context(USER, SID)
    ctx.user_model_state.overall_progress = NAN
    ctx.user_model_state.concepts["x"] = UserConceptMastery(alpha="many")  # type: ignore[arg-type]
    ctx.last_event = {"deep": nested(3_000)}
    errors = store.validate_session_context(ctx).errors
    assert len(errors) == 3
    sid = store.create_session(USER)
    ctx.session_id = uuid.UUID(str(sid))
    with pytest.raises(InvalidInput) as refused:
        store.update_session_context(sid, USER, ctx)
    assert written(refused)[0] in errors
