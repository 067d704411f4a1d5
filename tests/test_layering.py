"""The layers below the shells import no I/O framework and no file format: PBFT knows nothing of
`nodes.yaml`, and neither the replica nor the node core nor the contracts pull in asyncio or a
socket library. Checked in a fresh interpreter, so no other test's imports hide a violation."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = ("asyncio", "aiomqtt", "socket", "consortium.transport.mqtt")


def _imported_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_pbft_takes_its_settings_as_a_plain_value() -> None:
    loaded = _imported_by("consortium.pbft")
    assert "consortium.config" not in loaded
    assert "yaml" not in loaded


@pytest.mark.parametrize(
    "module",
    ["consortium.pbft", "consortium.node.core", "consortium.contracts", "consortium.ledger"],
)
def test_the_deterministic_layers_import_no_network_code(module: str) -> None:
    loaded = _imported_by(module)
    assert sorted(loaded.intersection(FORBIDDEN)) == []


def test_clients_log_in_without_the_node_package() -> None:
    """A member without a node runs the client library only: its broker login lives in
    `transport/`, not beside the node's broker management."""
    loaded = _imported_by("consortium.client.client")
    assert sorted(m for m in loaded if m.startswith("consortium.node")) == []
