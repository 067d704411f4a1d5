"""Hostile input on a real network: a compromised node and a client flood the bus while a
workload keeps going; the network keeps committing, counts every reject by reason, gives
rule-breaking transactions failed receipts and changes no other state."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from consortium import codec
from consortium.chaos.network import fresh_network
from consortium.chaos.workload import AckWorkload
from consortium.devnet import Devnet
from consortium.fuzz.consensus_inputs import BusView, ConsensusFuzzer
from consortium.fuzz.memory import nodes_rss_kib
from consortium.fuzz.runner import FuzzSettings, run_fuzz
from consortium.transport import credentials, topics
from consortium.transport.mqtt import MqttSettings, MqttTransport
from tests.network_helpers import wait_for

pytestmark = [pytest.mark.live, pytest.mark.slow]

# Reasons each family of hostile input must have made the honest nodes count.
REQUIRED_REASONS = {
    "malformed",  # random bytes, truncated, declared-oversize and deeply nested msgpack
    "bad_signature",  # forged signatures, a node's key signing as another node
    "non_member",  # a stranger's key
    "far_future_view",  # an enormous view change
    "future_view",  # votes for views ahead
    "out_of_window",  # votes for sequence numbers outside the watermarks
    "nothing_to_fetch",  # state transfer requests beyond the head
    "malformed_request",  # undecodable client batches
    "oversized_request_batch",  # more requests than a message may carry
    "bad_tx_signature",  # forged transaction signatures
    "unknown_sender",  # transactions by strangers
    "wrong_chain",  # transactions for another chain
    "malformed_transaction",  # truncated transactions
}


@pytest.mark.parametrize(("broker_per_node", "duration_s"), [(False, 20.0), (True, 9.0)])
def test_fuzzing_leaves_the_network_committing_and_counting(
    tmp_path: Path, broker_per_node: bool, duration_s: float
) -> None:
    """With a broker per organisation the compromised organisation also loses its broker for a
    third of the run."""
    with fresh_network(tmp_path / "net", load_signers=8, broker_per_node=broker_per_node) as net:
        settings = FuzzSettings(duration_s=duration_s, seed=11, heavy=False)
        report = asyncio.run(run_fuzz(net.config, net.keys, settings))
    summary = report.as_json()
    assert report.broker_outages == int(broker_per_node), summary
    assert report.problems == [], summary
    assert report.committed_during > 50, summary
    assert report.committed_after, summary
    assert set(report.rejected) >= REQUIRED_REASONS, summary["rejected"]
    assert report.rule_breakers_failed > 0 and not report.rule_breakers_succeeded, summary
    assert report.unexplained_state_changes == [], summary
    assert report.check.lost == 0 and report.check.heads_equal and report.check.ledgers_verified


async def _stall_under_huge_batches(net: Devnet, batches: int) -> float:
    """The workload's longest wait for a commit while a client publishes `batches` request
    messages of four million one-byte items each (well under the broker's size limit)."""
    signers = {m: k for m, k in net.member_pairs.items() if m.startswith("load-")}
    workload = AckWorkload(net.config, net.keys, signers, ["load-0"])
    working = asyncio.create_task(workload.run())
    login = credentials.broker_login(net.config, credentials.client_username("load-7"))
    settings = MqttSettings(login.url, login.username, login.password)
    await asyncio.sleep(3.0)
    async with MqttTransport(settings) as hostile:
        await hostile.wait_connected(timeout_s=10)
        huge = codec.encode_flat([0] * 4_000_000)
        for _ in range(batches):
            hostile.publish(topics.request_topic(net.config.chain_id, "load-7"), huge)
        await hostile.flush(10.0)
    await asyncio.sleep(10.0)
    workload.stop_submitting()
    await asyncio.sleep(5.0)
    workload.give_up()
    result = await working
    return result.max_stall_s


def test_a_client_cannot_stall_the_nodes_with_huge_arrays(tmp_path: Path) -> None:
    with fresh_network(tmp_path / "net", load_signers=8) as net:
        timeout_s = net.config.consensus.view_change_timeout_ms / 1000
        stall = asyncio.run(_stall_under_huge_batches(net, batches=3))
    assert stall < timeout_s, f"no commit for {stall:.1f} s"


async def _flood_big_unsigned(net: Devnet, count: int) -> None:
    """`count` distinct megabyte pre-prepares from a stranger, through bank-a's login."""
    fuzzer = ConsensusFuzzer(
        random.Random(1),
        net.config.chain_id,
        "bank-a",
        net.node_pairs["bank-a"],
        tuple(sorted(net.config.node_ids)),
        net.config.consensus.watermark_window,
        BusView(),
    )
    login = credentials.broker_login(net.config, credentials.node_username("bank-a"))
    settings = MqttSettings(login.url, login.username, login.password)
    async with MqttTransport(settings) as attacker:
        await attacker.wait_connected(timeout_s=10)
        for _ in range(count):
            message = fuzzer.big_unsigned_preprepare()
            attacker.publish(topics.pbft_topic(net.config.chain_id, "bank-a"), message.payload)
            await attacker.flush(10.0)


def test_rejected_messages_are_not_kept_in_memory(tmp_path: Path) -> None:
    with fresh_network(tmp_path / "net", load_signers=1) as net:
        wait_for(lambda: all(nodes_rss_kib(net.config).values()), 20)
        time.sleep(2.0)
        before = nodes_rss_kib(net.config)
        asyncio.run(_flood_big_unsigned(net, 150))
        time.sleep(3.0)
        after = nodes_rss_kib(net.config)
    others = [n for n in net.config.node_ids if n != "bank-a"]
    growth_kib = max((after[n] or 0) - (before[n] or 0) for n in others)
    assert growth_kib < 64 * 1024, f"a node kept {growth_kib // 1024} MiB of rejected messages"
