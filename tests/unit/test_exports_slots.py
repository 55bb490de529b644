"""Slots: at most `limit` exports at once, taken without waiting, each given back once."""

from __future__ import annotations

import threading

import pytest

from cityos.platform.exports.slots import Slots


def test_slots_run_out_at_the_limit_and_come_back() -> None:
    slots = Slots(2)
    first, second = slots.take(), slots.take()
    assert first is not None
    assert second is not None
    assert slots.take() is None
    assert slots.in_use == 2
    first.release()
    assert slots.in_use == 1
    third = slots.take()
    assert third is not None
    assert slots.take() is None


def test_a_slot_is_given_back_once_however_often_it_is_released() -> None:
    slots = Slots(1)
    slot = slots.take()
    assert slot is not None
    for _ in range(3):
        slot.release()
    assert slots.in_use == 0
    again = slots.take()
    assert again is not None
    assert slots.take() is None  # a second release did not make room for two


def test_releases_from_many_threads_count_once_each() -> None:
    slots = Slots(50)
    taken = [slots.take() for _ in range(50)]
    assert None not in taken
    threads = [
        threading.Thread(target=slot.release)  # type: ignore[union-attr]
        for slot in taken
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert slots.in_use == 0


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Slots(0)
