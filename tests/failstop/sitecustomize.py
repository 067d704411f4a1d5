"""Loaded by the node processes of tests/test_failstop_live.py only (through PYTHONPATH): the
commit of the block at the height written in $CONSORTIUM_FAIL_COMMIT_MARKER raises an OSError, as
a full disk would, once; the marker file is removed first, so the restarted node runs normally.
Likewise for a sync once $CONSORTIUM_FAIL_SYNC_MARKER exists."""

import os
from pathlib import Path

_marker = os.environ.get("CONSORTIUM_FAIL_COMMIT_MARKER")
if _marker:
    from consortium.ledger import ledger as _ledger

    _commit = _ledger.Ledger.commit

    def _failing_commit(self, block_hash, certificate):  # type: ignore[no-untyped-def]
        path = Path(_marker)
        if path.exists() and certificate.height >= int(path.read_text()):
            path.unlink()
            raise OSError(28, "No space left on device")
        return _commit(self, block_hash, certificate)

    _ledger.Ledger.commit = _failing_commit

# The next sync after $CONSORTIUM_FAIL_SYNC_MARKER appears raises an OSError, as a failing disk's
# fsync would, once: it runs on the node's sync thread, and the node must still stop at once.
_sync_marker = os.environ.get("CONSORTIUM_FAIL_SYNC_MARKER")
if _sync_marker:
    from consortium.ledger import store as _store

    _sync = _store.Store.sync

    def _failing_sync(self):  # type: ignore[no-untyped-def]
        path = Path(_sync_marker)
        if path.exists():
            path.unlink()
            raise OSError(5, "Input/output error")
        return _sync(self)

    _store.Store.sync = _failing_sync
