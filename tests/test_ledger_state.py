"""The block overlay's journal: a failed transaction's writes vanish, a kept one's stay, and
reads always see exactly the block's writes over the base (checked against a plain dict)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consortium.ledger.state import Layer, Overlay, State

KEYS = st.sampled_from(["a", "b", "c", "d"])
WRITES = st.lists(st.tuples(KEYS, st.none() | st.integers(0, 9)), max_size=6)


def _base() -> State:
    state = State()
    state.apply({"a": 1, "b": 2})
    return state


@pytest.mark.parametrize("layered", [False, True], ids=["on-state", "on-layer"])
@given(transactions=st.lists(st.tuples(WRITES, st.booleans()), max_size=8))
def test_overlay_matches_a_dict_model(layered, transactions):
    base = _base()
    view = Layer(base, {"c": 3}) if layered else base
    overlay = Overlay(view)
    model = {"a": 1, "b": 2, "c": 3} if layered else {"a": 1, "b": 2}
    for writes, succeeds in transactions:
        overlay.begin()
        scratch = dict(model)
        for key, value in writes:
            overlay.put(key, value)
            scratch[key] = value
            assert overlay.get(key) == value
        if succeeds:
            overlay.keep()
            model = scratch
        else:
            overlay.roll_back()
        for key in "abcd":
            assert overlay.get(key) == model.get(key)
        assert overlay.keys_with_prefix("") == sorted(k for k, v in model.items() if v is not None)
    assert base.values == {"a": 1, "b": 2}


def test_roll_back_without_begin_is_an_error():
    with pytest.raises(ValueError):
        Overlay(_base()).roll_back()
