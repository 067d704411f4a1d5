"""A node's own ledger, read from its SQLite store without disturbing the running node.

Each organisation reads what its own node committed: the regulator audits from the regulator's
store, an agency opens sealed boxes it finds in the agency's store. The store is opened
read-only (WAL lets a reader run beside the node that writes), and a snapshot reads the state
and the blocks in one read transaction, so a report never mixes two heights.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

from consortium import codec
from consortium.config import NetworkConfig
from consortium.errors import LocalError
from consortium.ledger.ledger import store_path
from consortium.ledger.store import StoredBlock, StoreError
from consortium.ledger.verify import open_readonly


class NodeLedger:
    """Read-only access to one node's store, usable as a contracts `StateView`."""

    def __init__(self, config: NetworkConfig, node_id: str) -> None:
        self.node_id = node_id
        self.path = store_path(config, node_id)
        self.store = open_readonly(self.path)  # a damaged file is a one-line StoreError

    def height(self) -> int:
        return self.store.height()

    def get(self, key: str) -> Any | None:
        encoded = self.store.state_value(key)
        return None if encoded is None else codec.decode(encoded)

    def keys_with_prefix(self, prefix: str) -> list[str]:
        return self.store.state_keys_with_prefix(prefix)

    def values_with_prefix(self, prefix: str) -> dict[str, Any]:
        return {key: self.get(key) for key in self.keys_with_prefix(prefix)}

    def put(self, key: str, value: Any) -> None:
        raise LocalError("a node's ledger is read-only here")

    def delete(self, key: str) -> None:
        raise LocalError("a node's ledger is read-only here")

    def blocks(self, start: int = 1) -> Iterator[StoredBlock]:
        return self.store.blocks(start)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[NodeLedger]:
        """Every read inside sees the store at one height."""
        self.store.db.execute("BEGIN")
        try:
            yield self
        finally:
            self.store.db.execute("COMMIT")

    def close(self) -> None:
        self.store.close()


class Ledgers:
    """The stores of this host's nodes, opened on first use and kept open."""

    def __init__(self, config: NetworkConfig) -> None:
        self.config = config
        self._open: dict[str, NodeLedger] = {}

    def has(self, node_id: str) -> bool:
        return node_id in self._open or store_path(self.config, node_id).exists()

    def of(self, node_id: str) -> NodeLedger:
        if node_id not in self._open:
            self._open[node_id] = NodeLedger(self.config, node_id)
        return self._open[node_id]

    async def caught_up(self, node_id: str, height: int, timeout_s: float = 10.0) -> NodeLedger:
        """The node's ledger once it holds block `height`; StoreError if it lags too long."""
        ledger = self.of(node_id)
        deadline = time.monotonic() + timeout_s
        while ledger.height() < height:
            if time.monotonic() > deadline:
                raise StoreError(
                    f"node {node_id} stored height {ledger.height()}, not {height}, "
                    f"after {timeout_s:g} s"
                )
            await asyncio.sleep(0.02)
        return ledger

    def close(self) -> None:
        for ledger in self._open.values():
            ledger.close()
        self._open.clear()
