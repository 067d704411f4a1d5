"""Loaded by the node processes of tests/test_failstop_live.py only (through PYTHONPATH): the
commit of the block at the height written in $CONSORTIUM_FAIL_COMMIT_MARKER raises an OSError, as
a full disk would, once; the marker file is removed first, so the restarted node runs normally."""

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
