"""The scripted tutoring-session lifecycle behind ``redis-sessions demo``."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from .models import QuizQuestion
from .records import Folder
from .samples import KNOWLEDGE_BASE, chat_turn, lesson_plan
from .store import SessionStore

Echo = Callable[[str], None]

QUIZ = [
    ("Vectors", "correct", None),
    ("Vectors", "correct", None),
    ("Vectors", "correct", None),
    ("Vectors", "correct", None),
    ("Matrices", "correct", None),
    ("Matrices", "incorrect", "multiplied element-wise"),
    ("Matrices", "unsure", None),
]


def run_demo(
    store: SessionStore, echo: Echo, *, keep: bool = False, url: str | None = None
) -> None:
    """Walk one learner through a session, printing each step; cleans up what it made, unless
    ``keep``: then its data stays, and it prints the redis-cli commands that show it (``url``, the
    server's address with the password hidden, goes into them)."""
    from ._cli_format import describe_user_keys

    user = f"demo-{uuid.uuid4().hex[:8]}@example.com"
    folder_id = uuid.uuid4()

    echo(f"== 1. A folder of course material for user {user}")
    folder = store.put_folder(
        user,
        Folder(
            id=folder_id,
            name="Linear algebra",
            vector_store_id="vs_linear_algebra",
            knowledge_base=KNOWLEDGE_BASE,
        ),
    )
    echo(f"put_folder -> {folder.name!r} ({folder.id}), created {folder.created_at:%H:%M:%S}")

    echo("\n== 2. A session created from the folder")
    sid = store.create_session(
        user, folder_id=folder_id, initial_context={"session_goal": "Multiply matrices fluently"}
    )
    ctx = store.get_session_context(sid, user)
    assert ctx is not None and ctx.analysis_result is not None
    echo(f"create_session -> {sid}")
    echo(
        f"  vector_store_id={ctx.vector_store_id}, key concepts from the folder: "
        f"{', '.join(ctx.analysis_result.key_concepts)}"
    )

    echo("\n== 3. Tutoring turns: messages, and whiteboard snapshots for the assistant's drawings")
    for turn in range(1, 5):
        role, text, actions = chat_turn(turn)
        got = store.append_message(sid, user, role, text, whiteboard_actions=actions)
        drawn = f" (+ whiteboard snapshot {got}: {len(actions)} actions)" if actions else ""
        echo(f"  turn {got} {role}: {text[:60]}{'...' if len(text) > 60 else ''}{drawn}")

    echo("\n== 4. A lesson plan, a quiz, and outcomes that move concept mastery")
    session = store.get_session(sid, user)
    assert session is not None
    ctx = session.context
    ctx.lesson_plan = lesson_plan(3)
    ctx.current_quiz_question = QuizQuestion(
        question="What is [[1,2],[3,4]] times the identity?",
        options=["[[1,2],[3,4]]", "[[1,0],[0,1]]"],
        correct_answer_index=0,
        explanation="The identity leaves a matrix unchanged.",
        difficulty="easy",
        related_section="Section 2: Matrices",
    )
    for topic, outcome, detail in QUIZ:
        concept = ctx.user_model_state.record_outcome(topic, outcome, detail)
        echo(
            f"  {topic:8} {outcome:9} -> mastery {concept.mastery:.2f}, confidence "
            f"{concept.confidence}{'  MASTERED' if concept.is_mastered else ''}"
        )
    ctx.last_pedagogical_action = "evaluated"
    store.update_session_context(sid, user, ctx, expected_version=session.version)
    updated = store.get_session(sid, user)
    assert updated is not None
    echo(f"update_session_context(expected_version={session.version}) -> version {updated.version}")

    echo("\n== 5. Reading back with history (one round trip)")
    with_history = store.get_session_context(sid, user, history=4)
    assert with_history is not None
    echo(
        f"get_session_context(history=4): {len(with_history.history)} history entries, "
        f"{len(with_history.whiteboard_history)} whiteboard batches, "
        f"latest_turn_no={with_history.latest_turn_no}, "
        f"latest_snapshot_index={with_history.latest_snapshot_index}"
    )

    echo("\n== 6. Listing the learner's sessions, newest activity first")
    second = store.create_session(user, initial_context={"session_goal": "Review vectors"})
    store.end_session(second, user)
    for row in store.list_user_sessions(user):
        echo(
            f"  {row.session_id}  v{row.version}  goal={row.session_goal!r}"
            f"{'  (ended)' if row.ended_at else ''}"
        )

    echo("\n== 7. The keys, as redis-cli shows them")
    for line in describe_user_keys(store, user):
        echo(line)

    if keep:
        _show_kept(store, echo, user, (sid, folder_id), url)
        return
    echo(
        "\n== 8. Deleting the first session: one Lua script removes record, messages, snapshots "
        "and index entry"
    )
    echo(f"delete_session -> {store.delete_session(sid, user)}")
    left = [line[2:] for line in describe_user_keys(store, user) if line.startswith("> ")]
    echo("keys left for the user:\n  " + "\n  ".join(left))

    stats = store.stats()
    echo(
        f"\ncache: {stats.cache_hits} hits, {stats.cache_misses} misses "
        f"(hit rate {stats.cache_hit_rate:.0%}), {stats.cache_size} entries"
    )
    store.delete_session(second, user)
    store.delete_folder(folder_id, user)
    remaining = [
        line[2:]
        for line in describe_user_keys(store, user)
        if line.startswith("> ") and ":req:" not in line
    ]
    window = store.config.replay_window.total_seconds()
    echo(
        "cleaned up after the demo: "
        + (", ".join(remaining) if remaining else "no session, message or folder key left")
        + f"; the writes' replay keys expire by themselves within {window:.0f} s"
    )


def _show_kept(
    store: SessionStore,
    echo: Echo,
    user: str,
    ids: tuple[uuid.UUID, uuid.UUID],
    url: str | None,
) -> None:
    """``--keep``: the demo's keys stay; the redis-cli commands that show them."""
    sid, folder_id = ids
    keys = store.keyspace
    cli = f"redis-cli -u '{url}'" if url else "redis-cli"
    live, _ = keys.expiry(user)
    echo(f"\n== 8. Kept: the demo's data stays in Redis for user {user}. Look at it with:")
    for command in (
        f"HGETALL '{keys.session(user, str(sid))}'",
        f"HGETALL '{keys.session(user, str(sid))}:msgs'",
        f"HGETALL '{keys.session(user, str(sid))}:wb'",
        f"ZREVRANGE '{keys.index(user)}' 0 -1 WITHSCORES",
        f"ZRANGE '{live}' 0 -1 WITHSCORES",
        f"HGETALL '{keys.folder(user, str(folder_id))}'",
        f"SCAN 0 MATCH '{keys.user_pattern(user)}' COUNT 1000",
    ):
        echo(f"  {cli} {command}")
    where = f" --url '{url}'" if url else ""
    echo(f"  redis-sessions keys {user}{where} --prefix {keys.prefix}    # all of them at once")
    echo(
        f"It expires by itself after {store.config.max_age.days} days idle (the sweep), or delete "
        f"it now: redis-sessions delete {user} SESSION for each session listed by "
        f"`redis-sessions list {user}`."
    )
