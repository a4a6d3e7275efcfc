"""The flow decisions, without a database."""

import pickle
import re

import pytest

from app.core.clock import ULID_PATTERN, new_id
from app.jobs.flow_decisions import (
    AwaitedEnd,
    ChildFacts,
    ChildSpec,
    ChildState,
    Create,
    FlowNode,
    Gathered,
    GatherFailed,
    KeepWaiting,
    Mismatch,
    ParentFacts,
    Ready,
    Reattach,
    StoredChild,
    Wait,
    Wake,
    attach,
    begin_wait,
    cancel_reach,
    check_key,
    child_event,
    child_id,
    decide_fan_in,
    gather_outcome,
    map_keys,
    spawn_key,
    wait_mode,
)
from app.jobs.flows import ChildJobFailed
from app.jobs.models import JobStatus

S = JobStatus
DONE = ChildState("A", S.COMPLETED, result={"n": 1})
BROKEN = ChildState("B", S.FAILED, error={"type": "ValueError", "message": "bad row"})
STOPPED = ChildState("C", S.CANCELED, error=None)
RUNNING = ChildState("D", S.RUNNING)


# Keys and ids


def test_spawn_key_is_the_callers_key_or_the_call_position() -> None:
    assert spawn_key("load", 7) == "load"
    assert spawn_key(None, 0) == "#0"
    assert spawn_key(None, 12) == "#12"


def test_map_keys_number_the_items_under_the_key_or_the_call() -> None:
    assert map_keys("chunk", 3, 3) == ["chunk[0]", "chunk[1]", "chunk[2]"]
    assert map_keys(None, 3, 2) == ["#3[0]", "#3[1]"]
    assert map_keys(None, 0, 0) == []


@pytest.mark.parametrize("key", ["", "#1", "a[0]", "with space", "x" * 101, "é"])
def test_keys_that_could_collide_or_are_unbounded_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="child key"):
        check_key(key)
    with pytest.raises(ValueError, match="child key"):
        spawn_key(key, 0)


def test_positional_and_explicit_keys_never_collide() -> None:
    explicit = {spawn_key(k, 0) for k in ("a", "b.c", "d:e-f_1")}
    positional = {spawn_key(None, n) for n in range(3)} | set(map_keys(None, 4, 3))
    assert not explicit & positional


def test_child_id_is_a_ulid_that_depends_only_on_parent_and_key() -> None:
    parent = new_id()
    first = child_id(parent, "#0")
    assert re.match(ULID_PATTERN, first)
    assert first == child_id(parent, "#0")
    assert first.startswith(parent[:10])
    others = {child_id(parent, f"#{n}") for n in range(1, 1000)} | {child_id(new_id(), "#0")}
    assert first not in others
    assert len(others) == 1000


# Re-attaching


def test_a_new_key_creates_a_child() -> None:
    assert attach("P", ChildSpec("#0", "t", "h"), None) == Create()


def test_a_stored_child_with_the_same_task_and_params_is_reattached() -> None:
    stored = StoredChild("C1", "t", "h", S.COMPLETED)
    assert attach("P", ChildSpec("#0", "t", "h"), stored) == Reattach("C1", finished=True)
    running = StoredChild("C1", "t", "h", S.RUNNING)
    assert attach("P", ChildSpec("#0", "t", "h"), running) == Reattach("C1", finished=False)


@pytest.mark.parametrize(("task", "digest"), [("other", "h"), ("t", "other")])
def test_a_key_reused_for_other_work_is_a_mismatch(task: str, digest: str) -> None:
    stored = StoredChild("C1", "t", "h", S.PENDING)
    verdict = attach("P", ChildSpec("k", task, digest), stored)
    assert isinstance(verdict, Mismatch)
    assert "'k'" in verdict.message
    assert "C1" in verdict.message


# Waiting


def test_no_wait_when_every_child_has_finished() -> None:
    assert begin_wait([DONE, BROKEN], return_exceptions=True) == Ready()


def test_fail_fast_does_not_wait_once_a_child_failed() -> None:
    assert begin_wait([RUNNING, BROKEN], return_exceptions=False) == Ready()
    assert begin_wait([RUNNING, STOPPED], return_exceptions=False) == Ready()


def test_wait_names_only_the_unfinished_children_in_order() -> None:
    pending = ChildState("E", S.PENDING)
    waiting = ChildState("F", S.WAITING)
    verdict = begin_wait([pending, DONE, RUNNING, waiting], return_exceptions=False)
    assert verdict == Wait(("E", "D", "F"), fail_fast=True)
    collecting = begin_wait([BROKEN, RUNNING], return_exceptions=True)
    assert collecting == Wait(("D",), fail_fast=False)


def test_a_worker_holds_parents_up_to_its_bound_then_parks_them() -> None:
    assert wait_mode(0, 2) == "hold"
    assert wait_mode(1, 2) == "hold"
    assert wait_mode(2, 2) == "park"
    assert wait_mode(0, 0) == "park"


# The fan-in

HELD = ParentFacts(S.WAITING, held=True)
PARKED = ParentFacts(S.WAITING, held=False)


def test_the_last_awaited_child_wakes_a_held_parent_in_place() -> None:
    verdict = decide_fan_in(HELD, [AwaitedEnd("C9", S.COMPLETED, True)], others_left=False)
    assert verdict == Wake(requeue=False, reason="children_finished", child_id="C9")


def test_the_last_awaited_child_requeues_a_parked_parent() -> None:
    verdict = decide_fan_in(PARKED, [AwaitedEnd("C9", S.FAILED, False)], others_left=False)
    assert verdict == Wake(requeue=True, reason="children_finished", child_id="C9")


def test_a_parent_awaiting_other_children_keeps_waiting() -> None:
    ended = [AwaitedEnd("C1", S.COMPLETED, True)]
    assert decide_fan_in(HELD, ended, others_left=True) == KeepWaiting()
    collecting = [AwaitedEnd("C1", S.FAILED, False)]
    assert decide_fan_in(HELD, collecting, others_left=True) == KeepWaiting()


@pytest.mark.parametrize("status", [S.FAILED, S.CANCELED])
def test_fail_fast_wakes_on_the_first_failed_child(status: JobStatus) -> None:
    ended = [AwaitedEnd("C1", S.COMPLETED, True), AwaitedEnd("C2", status, True)]
    verdict = decide_fan_in(HELD, ended, others_left=True)
    assert verdict == Wake(requeue=False, reason="child_failed", child_id="C2")


@pytest.mark.parametrize("status", [S.RUNNING, S.CANCELING, S.PENDING, S.FAILED])
def test_a_parent_that_is_not_waiting_is_not_woken(status: JobStatus) -> None:
    ended = [AwaitedEnd("C1", S.FAILED, True)]
    assert decide_fan_in(ParentFacts(status, True), ended, others_left=False) == KeepWaiting()


def test_no_awaited_child_ended_means_no_wake() -> None:
    assert decide_fan_in(HELD, [], others_left=False) == KeepWaiting()


# Gathering


def test_gather_returns_results_in_argument_order() -> None:
    other = ChildState("E", S.COMPLETED, result=[1, 2])
    assert gather_outcome([other, DONE], return_exceptions=False) == Gathered(([1, 2], {"n": 1}))


def test_gather_raises_the_first_failed_child_in_argument_order() -> None:
    verdict = gather_outcome([DONE, RUNNING, STOPPED, BROKEN], return_exceptions=False)
    assert isinstance(verdict, GatherFailed)
    error = verdict.error
    assert (error.job_id, error.status, error.error_type) == ("C", "canceled", "JobCancelledError")


def test_gather_collects_failures_in_place_when_asked() -> None:
    verdict = gather_outcome([BROKEN, DONE], return_exceptions=True)
    assert isinstance(verdict, Gathered)
    failure, value = verdict.values
    assert isinstance(failure, ChildJobFailed)
    assert (failure.job_id, failure.status) == ("B", "failed")
    assert (failure.error_type, failure.message) == ("ValueError", "bad row")
    assert str(failure) == "child job B failed: ValueError: bad row"
    assert value == {"n": 1}


def test_gather_refuses_to_collect_unfinished_children() -> None:
    with pytest.raises(ValueError, match="unfinished"):
        gather_outcome([DONE, RUNNING], return_exceptions=True)


def test_child_job_failed_survives_pickling() -> None:
    error = ChildJobFailed("J", "failed", "KeyError", "'x'")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (copy.job_id, copy.status, copy.error_type, copy.message) == (
        "J",
        "failed",
        "KeyError",
        "'x'",
    )


# Cancelling


def tree() -> list[FlowNode]:
    """R -> (A running, B waiting held -> (B1 pending, B2 completed, B3 waiting parked ->
    (B31 running)), C canceling, D failed)."""
    return [
        FlowNode("R", None, S.WAITING, held=True),
        FlowNode("A", "R", S.RUNNING, held=True),
        FlowNode("B", "R", S.WAITING, held=True),
        FlowNode("B1", "B", S.PENDING, held=False),
        FlowNode("B2", "B", S.COMPLETED, held=False),
        FlowNode("B3", "B", S.WAITING, held=False),
        FlowNode("B31", "B3", S.RUNNING, held=True),
        FlowNode("C", "R", S.CANCELING, held=True),
        FlowNode("D", "R", S.FAILED, held=False),
    ]


def test_cancel_reaches_every_unfinished_descendant_deepest_first_then_the_target() -> None:
    plan = cancel_reach("R", tree(), include_target=True)
    assert plan.cancel_now == ("B1", "B3")
    assert plan.ask_to_stop == ("B31", "A", "B", "R")
    assert plan.order == ("B31", "B1", "B3", "A", "B", "R")


def test_a_parent_ending_cancels_only_its_descendants() -> None:
    plan = cancel_reach("B", tree(), include_target=False)
    assert plan.cancel_now == ("B1", "B3")
    assert plan.ask_to_stop == ("B31",)


def test_cancel_does_not_reach_siblings_or_ancestors() -> None:
    plan = cancel_reach("A", tree(), include_target=True)
    assert plan.cancel_now == ()
    assert plan.ask_to_stop == ("A",)


def test_a_pending_target_without_children_is_canceled_at_once() -> None:
    plan = cancel_reach("B1", tree(), include_target=True)
    assert plan == type(plan)(("B1",), (), ("B1",))


# The root's stream


def test_a_started_child_event_names_the_child_and_its_place() -> None:
    facts = ChildFacts("C", "transform", "P", "R", 4, 1, S.RUNNING)
    kind, data = child_event(facts)
    assert kind == "child_started"
    assert data == {
        "job_id": "C",
        "task_name": "transform",
        "parent_id": "P",
        "map_index": 4,
        "attempt": 1,
        "status": "running",
    }


def test_a_finished_child_event_carries_its_error_and_result_artifact() -> None:
    error = {"type": "KeyError", "message": "x"}
    facts = ChildFacts("C", "t", "P", "R", None, 2, S.FAILED, error=error, result="ART")
    kind, data = child_event(facts)
    assert kind == "child_finished"
    assert (data["status"], data["error"], data["result"]) == ("failed", error, "ART")
