"""Roles, the room's rules and the fair queue, without training: the lecturer key and its token,
who may change what (`ae.permissions`), the queue's order and caps, and start estimates."""
from __future__ import annotations

import pytest

from ae.model.config import TrainingConfig
from ae.model.history import History
from ae.permissions import refuse_change, refuse_delete, refuse_lecturer_only, refuse_retrain
from ae.roles import Visitor, key_matches, make_token, roles_in_use, token_valid
from ae.training.estimates import queue_waits, run_seconds
from ae.training.fair_queue import FairQueue, Owner

KEY = "correct horse battery staple"
LECTURER, ALICE, BOB = Owner("web:lecturer", True), Owner("web:alice", False), Owner("web:bob", False)


@pytest.fixture
def lecturer_key(monkeypatch):
    monkeypatch.setenv("AE_LECTURER_KEY", KEY)
    return KEY


def test_without_a_key_everyone_is_the_lecturer_and_no_token_is_made(monkeypatch):
    monkeypatch.delenv("AE_LECTURER_KEY", raising=False)
    assert not roles_in_use() and not key_matches("") and not token_valid("1.abc")
    with pytest.raises(ValueError, match="No lecturer key"):
        make_token()


def test_the_key_is_checked_and_the_token_proves_the_role_until_it_expires(lecturer_key):
    assert roles_in_use()
    assert key_matches(KEY) and key_matches(f" {KEY} ") and not key_matches("guess") and not key_matches("")
    token = make_token(now=1_000_000)
    assert KEY not in token and token_valid(token, now=1_000_000 + 3600)
    assert not token_valid(token, now=1_000_000 + 5 * 3600)  # a lecture later: asked again
    expires, signature = token.split(".")
    assert not token_valid(f"{int(expires) + 10**6}.{signature}", now=1_000_000)  # a forged expiry
    assert not token_valid(f"{expires}.{'0' * len(signature)}", now=1_000_000)
    assert not token_valid("", now=0) and not token_valid("nonsense", now=0)


def test_only_the_lecturer_changes_pinned_models_and_students_only_their_own():
    lecturer, alice = Visitor("web:l", True), Visitor("web:alice", False)
    assert refuse_change(True, set(), lecturer) is None and refuse_delete(True, set(), lecturer) is None
    assert "pinned" in refuse_change(True, {"web:alice"}, alice) and "own copy" in refuse_change(True, set(), alice)
    assert refuse_change(False, {"web:alice"}, alice) is None
    assert "Another session" in refuse_change(False, {"web:bob"}, alice)
    assert "only the lecturer may delete" in refuse_delete(True, {"web:alice"}, alice)
    assert refuse_delete(False, {"web:alice"}, alice) is None and "only the models you trained" in refuse_delete(False, set(), alice)
    assert refuse_retrain(True, alice).endswith(".") and refuse_retrain(False, alice) is None
    for action in ("pin", "clear_queue", "run_next"):
        assert refuse_lecturer_only(action, lecturer) is None
        assert refuse_lecturer_only(action, alice).startswith("Only the lecturer may")


def test_the_lecturer_goes_first_and_students_take_turns():
    queue = FairQueue()
    for index in range(16):  # Alice's 16-size sweep
        queue.add(f"alice-{index}", ALICE)
    queue.add("bob-0", BOB)
    queue.add("bob-1", BOB)
    queue.add("lecture", LECTURER)
    order = queue.jobs()
    assert order[:5] == ["lecture", "alice-0", "bob-0", "alice-1", "bob-1"]
    assert order[5:] == [f"alice-{index}" for index in range(2, 16)]
    assert queue.positions()["lecture"] == 1

    assert queue.pop() == "lecture"
    assert queue.pop() == "alice-0"
    queue.add("carol-0", Owner("web:carol", False))  # arrives late: her first job waits for one turn only
    assert queue.jobs()[:3] == ["bob-0", "carol-0", "alice-1"]
    assert queue.held_by("web:alice") == 16 and queue.held_by("web:bob") == 2  # alice-0 runs: it counts
    queue.finished("alice-0")
    assert queue.held_by("web:alice") == 15


def test_a_student_who_was_served_waits_for_the_others_turns():
    queue = FairQueue()
    queue.add("alice-0", ALICE)
    assert queue.pop() == "alice-0"
    queue.add("alice-1", ALICE)
    queue.add("bob-0", BOB)
    assert queue.jobs() == ["bob-0", "alice-1"]  # Alice had her turn
    assert queue.ahead_of_next("web:alice") == 2 and queue.ahead_of_next("web:dave") == 1


def test_the_lecturer_reorders_and_clears_the_queue():
    queue = FairQueue()
    for name, owner in (("a", ALICE), ("b", BOB), ("l", LECTURER), ("c", ALICE)):
        queue.add(name, owner)
    queue.move_to_front("c")
    assert queue.jobs()[0] == "c" and queue.jobs()[1] == "l"
    assert sorted(queue.clear()) == ["a", "b", "c", "l"] and len(queue) == 0


def test_queue_waits_play_the_queue_out_over_the_slots():
    assert queue_waits([30.0], [10.0, 10.0, 10.0], slots=2) == [0.0, 10.0, 20.0]
    assert queue_waits([30.0, 5.0], [10.0, 10.0], slots=2) == [5.0, 15.0]
    assert queue_waits([None], [10.0], slots=1) == [None]  # a running job nobody can estimate
    assert queue_waits([], [None, 10.0, 10.0], slots=1) == [0.0, None, None]


def test_run_seconds_come_from_runs_of_the_same_kind():
    config = TrainingConfig(epochs=4, train_size=1000)
    measured = [(TrainingConfig(epochs=3, train_size=2000), History(epoch_seconds=(5.0, 2.0, 2.0))),
                (TrainingConfig(architecture="conv", train_size=1000), History(epoch_seconds=(50.0,)))]
    assert run_seconds(config, 4, measured) == pytest.approx(4 * 1.0 + 3.0)  # 1 s/epoch at 1000 digits + compile
    assert run_seconds(config, 4, measured, first_epoch=False) == pytest.approx(4.0)
    assert run_seconds(config.with_changes(batch_size=64), 4, measured) is None
