"""Fail-stop on the live network: a node whose commit raises (a full disk), or whose sync fails on
its sync thread (a failing disk), exits at once with status 70 and a FATAL line, sends nothing its
disk does not back, is restarted from its disk by its supervisor, and rejoins; the network never
stops committing meanwhile."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from consortium.ledger.ledger import store_path
from consortium.ledger.verify import verify_store
from consortium.node import supervisor
from tests.network_helpers import (
    client,
    heads_agree,
    live_network,
    status_rows,
    statuses,
    wait_for,
    wallets,
)

pytestmark = [pytest.mark.live, pytest.mark.slow]

INJECTION = Path(__file__).parent / "failstop"
VICTIM = "bank-b"


def _drafts(net, count: int, amount: int):
    signer = wallets(net)["load-0000"]
    return [
        signer.sign("receivable.draft", {"debtor": "core", "amount": amount + i, "due_day": 90})
        for i in range(count)
    ]


async def _submit(net, txs):
    async with client(net, 0) as c:
        return [await c.submit_one(stx, timeout_s=60) for stx in txs]


def test_a_node_whose_commit_or_sync_fails_stops_restarts_from_its_disk_and_rejoins(tmp_path):
    marker = tmp_path / "fail-at-height"
    sync_marker = tmp_path / "fail-next-sync"
    with live_network(tmp_path, load_signers=1) as net:
        wait_for(lambda: len(statuses(net)) == 5, 30)
        first = asyncio.run(_submit(net, _drafts(net, 3, 1000)))
        height = max(o.height for o in first)
        marker.write_text(str(height + 1))
        supervisor.stop_node(net.config, VICTIM)
        env = {
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(INJECTION), os.environ.get("PYTHONPATH")])
            ),
            "CONSORTIUM_FAIL_COMMIT_MARKER": str(marker),
            "CONSORTIUM_FAIL_SYNC_MARKER": str(sync_marker),
        }
        supervisor.spawn_node(net.config, VICTIM, extra_env=env)
        wait_for(lambda: heads_agree(net, min_height=height), 30)
        # The next block fails in the victim's commit: it stops, and its supervisor restarts it.
        second = asyncio.run(_submit(net, _drafts(net, 3, 2000)))
        assert all(o.ok for o in second)
        wait_for(lambda: not marker.exists(), 30)  # the victim reached the failing commit
        row = wait_for(lambda: status_rows(net)[VICTIM]["restarts"] >= 1 and status_rows(net), 30)
        victim = row[VICTIM]
        assert victim["last_exit"] == "exit 70", victim
        assert victim["last_exit_reason"].startswith("FATAL OSError: [Errno 28] No space left"), (
            victim
        )
        log = supervisor.log_path(net.config, VICTIM).read_text()
        assert "(while handling a message on c/" in log
        top = max(o.height for o in second)
        wait_for(lambda: heads_agree(net, min_height=top), 60)  # rejoined, from its own disk
        # Now its next sync fails, on the sync thread: the same fail-stop, the same recovery.
        sync_marker.write_text("armed")
        third = asyncio.run(_submit(net, _drafts(net, 3, 3000)))
        assert all(o.ok for o in third)
        wait_for(lambda: not sync_marker.exists(), 30)
        row = wait_for(lambda: status_rows(net)[VICTIM]["restarts"] >= 2 and status_rows(net), 30)
        victim = row[VICTIM]
        assert victim["last_exit"] == "exit 70", victim
        assert victim["last_exit_reason"].startswith("FATAL OSError: [Errno 5] Input/output"), (
            victim
        )
        assert "(while syncing the store" in supervisor.log_path(net.config, VICTIM).read_text()
        top = max(o.height for o in third)
        wait_for(lambda: heads_agree(net, min_height=top), 60)
    for node_id in net.config.node_ids:
        report = verify_store(net.config, net.keys, store_path(net.config, node_id))
        assert report.ok, (node_id, report.errors)
