"""`settle_heap`: the start-up heap leaves garbage collection; young passes become rarer."""

import gc
from collections.abc import Iterator

import pytest

from app.core.heap import YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()  # a worker started by an earlier test may have settled this process
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_settle_heap_freezes_what_exists_and_raises_the_young_threshold() -> None:
    _, middle, old = gc.get_threshold()
    alive: list[list[int]] = [[] for _ in range(100)]

    settle_heap()

    assert gc.get_freeze_count() >= len(alive)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    assert gc.isenabled()  # cyclic garbage made from now on is still collected


@pytest.mark.usefixtures("restored_gc")
def test_only_the_first_call_freezes() -> None:
    settle_heap()
    frozen = gc.get_freeze_count()
    made_later: list[list[int]] = [[] for _ in range(1000)]

    settle_heap()

    assert gc.get_freeze_count() == frozen
    assert len(made_later) == 1000
