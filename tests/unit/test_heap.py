"""heap.settle_after_start: what exists at start is frozen, young objects are collected less
often, and cyclic garbage made later is still collected."""

import gc
import weakref

from alertd import heap


class Node:
    def __init__(self) -> None:
        self.peer: Node | None = None


def test_settle_freezes_start_up_and_raises_the_gen0_threshold() -> None:
    before = gc.get_threshold()
    try:
        heap.settle_after_start()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (heap.GEN0_THRESHOLD, before[1], before[2])
        a, b = Node(), Node()
        a.peer, b.peer = b, a  # a cycle made after start: garbage once dropped
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
