"""docs/FORMATS.md is enough to use the network: an outside client (tests/outsider.py, which
never imports `consortium`) signs a transaction, submits it over raw MQTT, accepts its outcome
from f+1 signed commit notices and checks the block and its commit certificate in a node's store.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from consortium.certificate import certificate_problems
from consortium.ledger.ledger import store_path
from consortium.ledger.store import Store
from consortium.transport.url import parse_broker_url
from tests.network_helpers import live_network

OUTSIDER = Path(__file__).with_name("outsider.py")
THIRD_PARTY = {"msgpack", "cryptography", "paho"}


def _imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "the outsider imports nothing relative"
            names.add((node.module or "").split(".")[0])
    return names


def test_the_outsider_imports_only_the_standard_library_and_three_packages():
    imported = _imported_modules(OUTSIDER.read_text())
    assert "consortium" not in imported
    assert "tests" not in imported
    assert imported - THIRD_PARTY <= set(sys.stdlib_module_names), imported
    assert "__import__" not in OUTSIDER.read_text() and "importlib" not in imported


@pytest.mark.live
@pytest.mark.slow
def test_an_outsider_commits_a_transaction_and_checks_its_certificate(tmp_path):
    with live_network(tmp_path, load_signers=0) as net:
        config = net.config
        endpoint = parse_broker_url(config.broker_url)
        root = config.path.parent
        assert (config.keys_dir, config.run_dir, config.data_dir) == (
            root / "keys",
            root / "run",
            root / "data",
        )
        # Isolated mode (-I): no script directory, no PYTHONPATH, no user site on sys.path.
        command = [sys.executable, "-I", str(OUTSIDER), "--root", str(root)]
        command += [
            "--chain",
            config.chain_id,
            "--host",
            endpoint.host,
            "--port",
            str(endpoint.port),
        ]
        command += ["--member", "supplier-a"]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)

        # It ran without ever loading the project's code.
        assert report["consortium_modules"] == []
        assert report["ok"] is True, report["reason"]
        assert report["result"]["receivable"]
        assert len(report["notices_from"]) >= 2  # f + 1 for n = 5
        assert len(report["query_answers_from"]) >= 2
        assert len(report["unknown_answers"]) >= 4  # n - f
        assert len(report["retransmission_answers_from"]) >= 2
        assert set(report["heartbeat_heights"]) == set(config.node_ids)
        assert report["quorum"] == 4
        assert len(report["certificate_signers"]) >= 4

        # The project's own reading of that store agrees with the outsider's.
        tx_id = bytes.fromhex(report["tx_id"])
        store = Store(store_path(config, report["store_node"]), readonly=True)
        try:
            assert store.tx_locations(tx_id) == [(report["height"], report["position"])]
            block = store.block(report["height"])
            assert block is not None
            assert block.hash.hex() == report["block_hash"]
            assert bytes.fromhex(report["tx"]) in block.txs
            certificate = block.decoded_certificate()
            assert certificate is not None
            assert certificate_problems(certificate, config.chain_id, net.keys.node_keys) == []
            assert [s for s, _ in certificate.signatures] == report["certificate_signers"]
        finally:
            store.close()
