"""nodes.yaml: the default file loads, and each kind of mistake is named."""

from pathlib import Path

import pytest
import yaml

from consortium.config import load_config, parse_config
from consortium.errors import ConfigError
from consortium.keys import init_keys, load_directory, load_keypair

ROOT = Path(__file__).resolve().parent.parent


def default_raw() -> dict:
    return yaml.safe_load((ROOT / "nodes.yaml").read_text())


def test_default_network_has_five_nodes_and_every_scenario_role():
    config = load_config(ROOT / "nodes.yaml")
    assert config.node_ids == ("bank-a", "bank-b", "core", "agency", "regulator")
    roles = [m.role for m in config.members]
    assert roles.count("supplier") >= 2
    assert roles.count("collection_agency") >= 3
    assert "warehouse" in roles


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["nodes"][0].update(role="wizard"), "nodes[0].role: unknown role 'wizard'"),
        (lambda r: r["nodes"].append({"id": "bank-a", "role": "bank"}), "duplicate id 'bank-a'"),
        (lambda r: r.update(nodes=r["nodes"][:3]), "3 nodes, PBFT needs at least 4"),
        (lambda r: r["members"][0].pop("id"), "members[0]: missing field 'id'"),
        (lambda r: r["nodes"][1].update(id="Bank B"), "nodes[1].id"),
        (lambda r: r.update(consensus={"batch_max_txs": "many"}), "consensus.batch_max_txs"),
        (lambda r: r.update(consensus={"speed": 3}), "consensus: unknown field 'speed'"),
        (lambda r: r["genesis"]["balances"].update(nobody=5), "genesis.balances.nobody"),
        (lambda r: r.update(broker="http://x"), "broker"),
        (lambda r: r.pop("chain_id"), "missing field 'chain_id'"),
        (lambda r: r["nodes"].append({"id": "s", "role": "supplier"}), "member without a node"),
    ],
)
def test_malformed_config_names_the_field(mutate, message):
    raw = default_raw()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_config(raw, ROOT / "nodes.yaml")
    assert message in str(err.value)


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "nodes.yaml"
    bad.write_text("nodes: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_keys_init_never_overwrites_without_force(tmp_path):
    path = tmp_path / "nodes.yaml"
    path.write_text((ROOT / "nodes.yaml").read_text())
    config = load_config(path)
    with pytest.raises(ConfigError, match="missing key file"):
        load_directory(config)
    written = init_keys(config)
    assert len(written) == len(config.members) + len(config.nodes)
    before = load_directory(config)
    with pytest.raises(ConfigError, match="--force"):
        init_keys(config)
    assert load_directory(config) == before
    init_keys(config, force=True)
    after = load_directory(config)
    assert after.member_keys["bank-a"] != before.member_keys["bank-a"]
    pair = load_keypair(config, "bank-a", "member")
    assert pair.public_key == after.member_keys["bank-a"]


def test_corrupt_key_file_is_named(tmp_path):
    path = tmp_path / "nodes.yaml"
    path.write_text((ROOT / "nodes.yaml").read_text())
    config = load_config(path)
    init_keys(config)
    victim = config.keys_dir / "core.node.pub"
    victim.write_bytes(b"\xc1garbage")
    with pytest.raises(ConfigError, match=r"core\.node\.pub"):
        load_directory(config)
