"""The caches' LRU: bounded by declared sizes, least recently used out first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consortium.lru import SizedLRU


def test_the_least_recently_used_go_first_and_the_bound_holds():
    lru: SizedLRU[str, int] = SizedLRU(10)
    lru.put("a", 1, 4)
    lru.put("b", 2, 4)
    assert lru.get("a") == 1  # "b" is now the oldest
    lru.put("c", 3, 4)
    assert lru.keys() == ["a", "c"] and lru.current_bytes == 8
    lru.put("a", 9, 6)  # replacing counts the new size only
    assert lru.keys() == ["c", "a"] and lru.current_bytes == 10 and lru.get("a") == 9
    lru.put("huge", 0, 11)  # larger than the budget: not kept, nothing evicted for it
    assert "huge" not in lru and lru.keys() == ["c", "a"]
    lru.put("a", 5, 11)  # an entry grown past the budget is dropped
    assert lru.keys() == ["c"] and lru.current_bytes == 4
    assert lru.get("missing") is None


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 30)), max_size=200))
def test_it_matches_a_model_of_itself(ops):
    """Against a list model: same keys in the same order, and never more than the budget."""
    lru: SizedLRU[int, int] = SizedLRU(50)
    model: list[tuple[int, int]] = []  # (key, size), oldest first
    for key, size in ops:
        lru.put(key, key, size)
        model = [(k, s) for k, s in model if k != key]
        if size <= 50:
            model.append((key, size))
        while sum(s for _, s in model) > 50:
            model.pop(0)
        assert lru.keys() == [k for k, _ in model]
        assert lru.current_bytes == sum(s for _, s in model) <= 50
