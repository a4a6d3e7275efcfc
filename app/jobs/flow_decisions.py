"""What happens in a flow: pure functions over frozen values, no I/O.

The job store writes what these decide (see `app.jobs.flows` for the design): a child's
identity under its parent, whether a re-run parent re-attaches to a child, whether a parent
must wait, whether a finished child wakes its waiting parent, what `gather` returns or
raises, which descendants a cancel reaches, and the events a flow's root shows.
"""

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.jobs.flows import ChildJobFailed
from app.jobs.models import JobStatus

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# Keys ----------------------------------------------------------------------------------------


def check_key(key: str) -> str:
    """A caller's child key: 1-100 letters, digits or `_ . : -` (brackets and `#` are kept for
    the keys made from call positions, so the two never collide)."""
    if not KEY_PATTERN.match(key):
        raise ValueError(
            f"child key {key!r} must be 1-100 characters of letters, digits, '_', '.', ':', '-'"
        )
    return key


def spawn_key(key: str | None, call: int) -> str:
    """The identity of a spawned child under its parent: the caller's key, or the position
    of the call among the parent's `spawn`/`map` calls (`#0`, `#1`, ...)."""
    return check_key(key) if key is not None else f"#{call}"


def map_keys(key: str | None, call: int, count: int) -> list[str]:
    """The identities of a map's items: `<key>[i]`, or `#<call>[i]` without a key."""
    base = check_key(key) if key is not None else f"#{call}"
    return [f"{base}[{index}]" for index in range(count)]


def child_id(parent_id: str, key: str) -> str:
    """The child's job id, derived from its parent and key: a ULID with the parent's time part
    and 80 bits of a hash, so a re-run parent names the same child before it reads anything."""
    digest = int.from_bytes(hashlib.sha256(f"{parent_id}/{key}".encode()).digest()[:10], "big")
    tail = "".join(_CROCKFORD[(digest >> shift) & 31] for shift in range(75, -1, -5))
    return parent_id[:10].upper() + tail


# Re-attaching ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildSpec:
    """A child a parent asks for: its key, task and the fingerprint of task and params."""

    key: str
    task_name: str
    request_hash: str


@dataclass(frozen=True)
class StoredChild:
    """A child of the parent already in the job table under the same key."""

    job_id: str
    task_name: str
    request_hash: str | None
    status: JobStatus


@dataclass(frozen=True)
class Create:
    """No child has this key yet: queue one."""


@dataclass(frozen=True)
class Reattach:
    """The child exists (an earlier run of the parent made it): use it, do not queue another."""

    job_id: str
    finished: bool


@dataclass(frozen=True)
class Mismatch:
    """The key names a child of another task or other params: the parent's code changed."""

    message: str


def attach(
    parent_id: str, spec: ChildSpec, stored: StoredChild | None
) -> Create | Reattach | Mismatch:
    """Whether a `spawn`/`map` item queues a new child or re-attaches to the stored one."""
    if stored is None:
        return Create()
    if stored.task_name != spec.task_name or stored.request_hash != spec.request_hash:
        return Mismatch(
            f"job {parent_id} already has a child with key {spec.key!r} "
            f"(job {stored.job_id}, task {stored.task_name!r}) with another task or params; "
            "give this call its own key"
        )
    return Reattach(stored.job_id, stored.status.is_terminal)


# Waiting and waking ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildState:
    """An awaited child as its parent reads it: status, error summary and stored result."""

    job_id: str
    status: JobStatus
    error: Mapping[str, Any] | None = None
    result: Any = None

    @property
    def failed(self) -> bool:
        return self.status in (JobStatus.FAILED, JobStatus.CANCELED)


@dataclass(frozen=True)
class Ready:
    """Nothing to wait for: read the children's results now."""


@dataclass(frozen=True)
class Wait:
    """Wait for these children (the unfinished ones, in order)."""

    child_ids: tuple[str, ...]
    fail_fast: bool


def begin_wait(states: Sequence[ChildState], *, return_exceptions: bool) -> Ready | Wait:
    """Whether a `gather` must wait: not when every child has finished, nor (fail-fast) when
    one has already failed."""
    fail_fast = not return_exceptions
    if fail_fast and any(state.failed for state in states):
        return Ready()
    unfinished = tuple(s.job_id for s in states if not s.status.is_terminal)
    return Wait(unfinished, fail_fast) if unfinished else Ready()


WaitMode = Literal["hold", "park"]


def wait_mode(waiting_now: int, max_waiting: int) -> WaitMode:
    """A worker keeps up to `max_waiting` waiting parents suspended in memory (`hold`); past
    that a parent is `park`ed: it leaves the worker, and the child that completes its wait puts
    it back in the queue, to re-run and re-attach."""
    return "hold" if waiting_now < max_waiting else "park"


@dataclass(frozen=True)
class ParentFacts:
    """A child's parent as the child's finishing transaction sees it (row locked)."""

    status: JobStatus
    held: bool  # a worker holds it (suspended in memory), else it is parked


@dataclass(frozen=True)
class AwaitedEnd:
    """A finished child whose wait row the transaction deleted."""

    child_id: str
    status: JobStatus
    fail_fast: bool


@dataclass(frozen=True)
class Wake:
    """Wake the parent: resume it in its worker (`held`) or put it back in the queue."""

    requeue: bool
    reason: Literal["children_finished", "child_failed"]
    child_id: str


@dataclass(frozen=True)
class KeepWaiting:
    """The parent still awaits other children (or is not waiting at all)."""


def decide_fan_in(
    parent: ParentFacts, ended: Sequence[AwaitedEnd], others_left: bool
) -> Wake | KeepWaiting:
    """What children finishing in one transaction mean for their waiting parent: wake it when
    it awaits nothing more, or at once when an awaited child failed and it waits fail-fast."""
    if parent.status is not JobStatus.WAITING or not ended:
        return KeepWaiting()
    for end in ended:
        if end.fail_fast and end.status is not JobStatus.COMPLETED:
            return Wake(requeue=not parent.held, reason="child_failed", child_id=end.child_id)
    if others_left:
        return KeepWaiting()
    return Wake(requeue=not parent.held, reason="children_finished", child_id=ended[-1].child_id)


# Gathering ------------------------------------------------------------------------------


def child_failure(state: ChildState) -> ChildJobFailed:
    """The `ChildJobFailed` a failed or canceled child raises in its parent."""
    error = state.error or {}
    default_type = "JobCancelledError" if state.status is JobStatus.CANCELED else "Error"
    return ChildJobFailed(
        state.job_id,
        state.status.value,
        str(error.get("type", default_type)),
        str(error.get("message", f"the child job ended {state.status.value}")),
    )


@dataclass(frozen=True)
class Gathered:
    """The children's results in argument order (their `ChildJobFailed` where collected)."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class GatherFailed:
    """Raise this: the first failed child in argument order."""

    error: ChildJobFailed


def gather_outcome(
    states: Sequence[ChildState], *, return_exceptions: bool
) -> Gathered | GatherFailed:
    """What `gather` returns or raises once it has stopped waiting."""
    if not return_exceptions:
        for state in states:
            if state.failed:
                return GatherFailed(child_failure(state))
    unfinished = [s.job_id for s in states if not s.status.is_terminal]
    if unfinished:
        raise ValueError(f"gather ended while children {unfinished} are unfinished")
    return Gathered(tuple(child_failure(s) if s.failed else s.result for s in states))


# Cancelling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowNode:
    """A job of a flow: enough to decide how a cancel reaches it."""

    job_id: str
    parent_id: str | None
    status: JobStatus
    held: bool  # a worker holds it (running, canceling, or waiting suspended in memory)


@dataclass(frozen=True)
class CancelPlan:
    """Jobs to end `canceled` now (nobody runs them) and jobs whose worker must stop them
    (`canceling`), deepest first, the target (if included) last."""

    cancel_now: tuple[str, ...]
    ask_to_stop: tuple[str, ...]
    order: tuple[str, ...] = ()  # both, deepest first: the order to write them in


def cancel_reach(target_id: str, nodes: Sequence[FlowNode], *, include_target: bool) -> CancelPlan:
    """Which of `target_id`'s descendants (and itself, if asked) a cancel reaches.

    `nodes` hold the target and any jobs of its flow; only its unfinished descendants are
    reached. Pending jobs and parked parents end at once; running jobs and held parents are
    asked to stop; jobs already asked are left alone.
    """
    children: dict[str, list[FlowNode]] = {}
    by_id = {node.job_id: node for node in nodes}
    for node in nodes:
        if node.parent_id is not None:
            children.setdefault(node.parent_id, []).append(node)
    depth: dict[str, int] = {}
    frontier = [target_id]
    level = 0
    while frontier:
        for job_id in frontier:
            depth[job_id] = level
        frontier = [
            c.job_id for j in frontier for c in children.get(j, ()) if c.job_id not in depth
        ]
        level += 1
    reached = [by_id[j] for j in depth if j in by_id and (include_target or j != target_id)]
    reached.sort(key=lambda node: (-depth[node.job_id], node.job_id))
    now: list[str] = []
    stop: list[str] = []
    order: list[str] = []
    for node in reached:
        if node.status is JobStatus.PENDING or (node.status is JobStatus.WAITING and not node.held):
            now.append(node.job_id)
        elif node.status in (JobStatus.RUNNING, JobStatus.WAITING):
            stop.append(node.job_id)
        else:
            continue
        order.append(node.job_id)
    return CancelPlan(tuple(now), tuple(stop), tuple(order))


# The root's stream ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildFacts:
    """A child at the moment it started or finished, as its root's stream shows it."""

    job_id: str
    task_name: str
    parent_id: str
    root_id: str
    map_index: int | None
    attempt: int
    status: JobStatus
    error: Mapping[str, Any] | None = None
    result: str | None = None  # the result artifact's id


def child_event(child: ChildFacts) -> tuple[str, dict[str, Any]]:
    """The event the root's stream carries: `child_started` or `child_finished`."""
    data: dict[str, Any] = {
        "job_id": child.job_id,
        "task_name": child.task_name,
        "parent_id": child.parent_id,
        "map_index": child.map_index,
        "attempt": child.attempt,
        "status": child.status.value,
    }
    if child.status.is_terminal:
        data["error"] = None if child.error is None else dict(child.error)
        data["result"] = child.result
        return "child_finished", data
    return "child_started", data
