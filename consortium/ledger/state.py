"""The replicated state: a key-value map with an incremental state root, speculative layers, and
scratch overlays.

State root: an additive multiset hash (in the manner of LtHash). Every entry (key, value) maps to a
2048-bit number by SHAKE-256 of its canonical encoding; the accumulator is their sum modulo 2**2048
and the root is SHA-256 of the accumulator. Writing a key subtracts the old entry's number and adds
the new one, so a block costs one hash per written key, never a rehash of the whole state, and the
root depends only on the state's content (not on history), which is what state transfer needs.

Three kinds of view, all with `get` and `keys_with_prefix`:
- `State`: what is committed, in memory (genesis, checks that replay a chain); a running node's
  committed state is `consortium.ledger.stored_state.StoredState`, on disk behind a cache.
- `Layer`: the result of one validated but uncommitted block on top of a `State` or another
  `Layer`, with its own accumulator; PBFT keeps several blocks in flight, each validated on top of
  the one before. Committing a block folds its layer into the `State` without hashing again.
- `Overlay`: scratch writes of one block, with each transaction's writes rolled back if it fails.

Values are codec-encodable (None, bool, int, str, bytes, tuple/list, dict with str keys). Readers
must treat returned values as immutable: to change a record, `put` a new one. `None` means absent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from consortium import codec

if TYPE_CHECKING:
    from consortium.ledger.stored_state import StoredState

ACCUMULATOR_BYTES = 256
ACCUMULATOR_MASK = (1 << (8 * ACCUMULATOR_BYTES)) - 1
_ABSENT = object()


def entry_digest(key: str, encoded_value: bytes) -> int:
    """The accumulator term of one entry: SHAKE-256 of the key and the value's canonical
    encoding (two msgpack values back to back, so the pair is unambiguous) as a 2048-bit integer."""
    data = codec.encode_flat(key) + encoded_value
    return int.from_bytes(hashlib.shake_256(data).digest(ACCUMULATOR_BYTES), "little")


def root_of(accumulator: int) -> bytes:
    return hashlib.sha256(accumulator.to_bytes(ACCUMULATOR_BYTES, "little")).digest()


class State:
    """Committed state: values, each entry's digest, and the running accumulator."""

    __slots__ = ("accumulator", "digests", "values")

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.digests: dict[str, int] = {}
        self.accumulator = 0

    @property
    def root(self) -> bytes:
        return root_of(self.accumulator)

    def get(self, key: str) -> Any | None:
        return self.values.get(key)

    def digest_of(self, key: str) -> int | None:
        return self.digests.get(key)

    def keys_with_prefix(self, prefix: str) -> list[str]:
        return sorted(k for k in self.values if k.startswith(prefix))

    def items(self) -> Iterator[tuple[str, Any]]:
        """All entries in key order (for snapshots and state transfer)."""
        for key in sorted(self.values):
            yield key, self.values[key]

    def fold(self, layer: Layer) -> None:
        """Make `layer` (whose base must be this state) committed."""
        if layer.base is not self:
            raise ValueError("a layer folds only into the state it was built on")
        for key, value in layer.values.items():
            if value is None:
                self.values.pop(key, None)
                self.digests.pop(key, None)
            else:
                self.values[key] = value
                self.digests[key] = layer.digests[key]
        self.accumulator = layer.accumulator

    def apply(self, writes: dict[str, Any]) -> bytes:
        """Commit `writes` directly (genesis, tests) and return the new root."""
        self.fold(Layer(self, writes))
        return self.root


class Layer:
    """One block's writes on top of a base view, encoded and hashed once, with the resulting
    accumulator. The encodings are kept for the store, which writes them as they are."""

    __slots__ = ("accumulator", "base", "digests", "encoded", "values")

    def __init__(self, base: State | StoredState | Layer, writes: dict[str, Any]) -> None:
        self.base = base
        self.values = writes
        # One pass per step, rather than one loop doing every step per entry, keeps the
        # per-entry work inside C calls: this runs for every key a block writes.
        encode = codec.encode
        self.encoded = {key: encode(value) for key, value in writes.items() if value is not None}
        self.digests = {key: entry_digest(key, data) for key, data in self.encoded.items()}
        digest_of = base.digests.get if type(base) is State else base.digest_of
        replaced = sum(filter(None, map(digest_of, writes)))
        self.accumulator = (
            base.accumulator - replaced + sum(self.digests.values())
        ) & ACCUMULATOR_MASK

    @property
    def root(self) -> bytes:
        return root_of(self.accumulator)

    def get(self, key: str) -> Any | None:
        value = self.values.get(key, _ABSENT)
        return self.base.get(key) if value is _ABSENT else value

    def digest_of(self, key: str) -> int | None:
        if key in self.values:
            return self.digests.get(key)
        return self.base.digest_of(key)

    def keys_with_prefix(self, prefix: str) -> list[str]:
        return _merge_prefix(self.base.keys_with_prefix(prefix), self.values, prefix)

    def rebase(self, state: State | StoredState) -> None:
        """After the layer below was folded into `state`, read through `state` directly."""
        self.base = state


class Overlay:
    """Scratch writes over any view: reads fall through, writes stay here.

    One overlay holds a whole block's writes; each transaction runs between `begin` and either
    `keep` or `roll_back`, which restores what the transaction overwrote, so a failed
    transaction changes nothing. (A journal rather than an overlay per transaction: every read
    then costs one lookup here and one in the base.)"""

    __slots__ = ("_base_get", "_undo", "base", "writes")

    def __init__(self, base: State | StoredState | Layer | Overlay) -> None:
        self.base = base
        self.writes: dict[str, Any] = {}
        self._undo: dict[str, Any] | None = None
        # Reading a committed State is a plain dict lookup: skip a call on the hottest path.
        self._base_get = base.values.get if type(base) is State else base.get

    def get(self, key: str) -> Any | None:
        value = self.writes.get(key, _ABSENT)
        return self._base_get(key) if value is _ABSENT else value

    def put(self, key: str, value: Any) -> None:
        """Write a value; `None` deletes the key."""
        undo = self._undo
        if undo is not None and key not in undo:
            undo[key] = self.writes.get(key, _ABSENT)
        self.writes[key] = value

    def delete(self, key: str) -> None:
        self.put(key, None)

    def keys_with_prefix(self, prefix: str) -> list[str]:
        return _merge_prefix(self.base.keys_with_prefix(prefix), self.writes, prefix)

    def begin(self) -> None:
        """Start one transaction's writes."""
        self._undo = {}

    def keep(self) -> None:
        """The transaction succeeded: its writes stay."""
        self._undo = None

    def roll_back(self) -> None:
        """The transaction failed: put back what it overwrote."""
        if self._undo is None:
            raise ValueError("no transaction to roll back")
        for key, old in self._undo.items():
            if old is _ABSENT:
                del self.writes[key]
            else:
                self.writes[key] = old
        self._undo = None


def _merge_prefix(base_keys: list[str], writes: dict[str, Any], prefix: str) -> list[str]:
    keys = set(base_keys)
    for key, value in writes.items():
        if key.startswith(prefix):
            if value is None:
                keys.discard(key)
            else:
                keys.add(key)
    return sorted(keys)
