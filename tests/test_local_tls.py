"""The local CA that `up --broker-per-node` makes: once, reused, renewed when it no longer fits."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509

from consortium.config import NetworkConfig, parse_config
from consortium.node.local_tls import ensure_local_certificates
from tests.brokers import _NODE_ROLES, CHAIN_ID, NODE_IDS


def per_node(directory: Path, host: str = "127.0.0.1") -> NetworkConfig:
    raw = {
        "chain_id": CHAIN_ID,
        "brokers": "per_node",
        "broker": f"mqtt://{host}:28830",
        "nodes": [{"id": n, "role": _NODE_ROLES[n]} for n in NODE_IDS],
    }
    return parse_config(raw, directory / "nodes.yaml")


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_every_broker_gets_a_certificate_for_its_host_signed_by_one_ca(tmp_path: Path) -> None:
    config = per_node(tmp_path)
    ensure_local_certificates(config)
    tls_dir = config.run_dir / "tls"
    ca = certificate(tls_dir / "ca.crt")
    for node_id in NODE_IDS:
        leaf = certificate(tls_dir / f"{node_id}.crt")
        leaf.verify_directly_issued_by(ca)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        assert stat.S_IMODE((tls_dir / f"{node_id}.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tls_dir / "ca.key").stat().st_mode) == 0o600


def test_certificates_are_reused_and_made_again_when_they_no_longer_fit(tmp_path: Path) -> None:
    config = per_node(tmp_path)
    ensure_local_certificates(config)
    tls_dir = config.run_dir / "tls"
    first = {p.name: p.read_bytes() for p in tls_dir.iterdir()}
    ensure_local_certificates(config)
    assert {p.name: p.read_bytes() for p in tls_dir.iterdir()} == first
    # Another host: every broker certificate is made again under the same CA.
    moved = per_node(tmp_path, host="localhost")
    ensure_local_certificates(moved)
    assert (tls_dir / "ca.crt").read_bytes() == first["ca.crt"]
    leaf = certificate(tls_dir / "core.crt")
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    # A damaged CA: a new one, and everything it signs with it.
    (tls_dir / "ca.key").write_text("damaged")
    ensure_local_certificates(moved)
    ca = certificate(tls_dir / "ca.crt")
    assert (tls_dir / "ca.crt").read_bytes() != first["ca.crt"]
    for node_id in NODE_IDS:
        certificate(tls_dir / f"{node_id}.crt").verify_directly_issued_by(ca)


def test_certificates_given_in_nodes_yaml_are_never_touched(tmp_path: Path) -> None:
    raw = {
        "chain_id": CHAIN_ID,
        "brokers": "per_node",
        "nodes": [
            {
                "id": n,
                "role": _NODE_ROLES[n],
                "broker": f"mqtt://127.0.0.1:{28830 + i}",
                "broker_tls": {"certfile": "own.crt", "keyfile": "own.key"},
            }
            for i, n in enumerate(NODE_IDS)
        ],
    }
    config = parse_config(raw, tmp_path / "nodes.yaml")
    ensure_local_certificates(config)
    assert not (config.run_dir / "tls").exists()
