"""A retained heartbeat arrives at once however long ago its node sent it: `status` and the
dashboard judge it by the time it says it was made (`sent_at_ms`), so a node gone for a minute
on another host does not show as alive."""

from __future__ import annotations

import time
from pathlib import Path

from consortium.cli.network_cmd import _rows
from consortium.client.watch import StatusWatcher, heartbeat_age_s
from consortium.node.broker import write_broker_config
from consortium.notices import encode_status
from consortium.transport import topics
from consortium.transport.mqtt import IncomingMessage
from tests.brokers import CHAIN_ID, network_config


def heartbeat(node_id: str, age_s: float) -> dict:
    return {"id": node_id, "height": 7, "sent_at_ms": int((time.time() - age_s) * 1000)}


def test_the_age_of_a_heartbeat_is_read_from_when_it_was_made() -> None:
    now = time.time()
    assert heartbeat_age_s(heartbeat("core", 60.0), now) > 59.0
    assert heartbeat_age_s({"id": "core", "sent_at_ms": int(now * 1000) + 5000}, now) == 0.0
    assert heartbeat_age_s({"id": "core"}, now) is None  # made before the key existed
    assert heartbeat_age_s({"id": "core", "sent_at_ms": "soon"}, now) is None


def test_a_minute_old_retained_heartbeat_of_a_remote_node_is_not_alive(tmp_path: Path) -> None:
    config = network_config(tmp_path, 18830)
    write_broker_config(config)  # the operator's login, as on the machine that runs `status`
    watcher = StatusWatcher(config)
    for node_id, age in (("bank-a", 60.0), ("core", 0.5)):
        topic = topics.status_topic(CHAIN_ID, node_id)
        watcher._on_message(IncomingMessage(topic, encode_status(heartbeat(node_id, age))))
    assert watcher.age_s("bank-a") > 59.0
    assert watcher.age_s("core") < 5.0
    ages = {n: watcher.age_s(n) for n in config.node_ids}
    rows = {row["id"]: row for row in _rows(config, watcher.latest, ages)}
    assert rows["bank-a"]["alive"] is False and rows["bank-a"]["heartbeat_age_s"] > 59.0
    assert rows["core"]["alive"] is True
    assert rows["bank-b"]["alive"] is False and rows["bank-b"]["heartbeat_age_s"] is None
