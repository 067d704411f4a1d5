"""nodes.yaml: the default file loads, and each kind of mistake is named in one line."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from consortium.cli.main import cli
from consortium.config import MAX_DEPTH, MAX_FILE_BYTES, load_config, parse_config
from consortium.errors import ConfigError
from consortium.keys import init_keys, load_directory, load_keypair

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEXT = (ROOT / "nodes.yaml").read_text()


def refusal(path: Path) -> str:
    """The message `load_config` refuses `path` with, checked to be a single line."""
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert len(message.splitlines()) == 1, message
    return message


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "nodes.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


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
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        # The topic layout `c/<chain_id>/...` cannot carry a level with '/', '+' or '#'.
        ("chain_id", "a/b+#", "chain_id: 'a/b+#' cannot be an MQTT topic level"),
        ("chain_id", "", "chain_id: '' cannot be an MQTT topic level"),
        ("chain_id", "c" * 65, "chain_id: 'ccc"),
        # What `up` refuses through transport.url.parse_broker_url, every command refuses.
        ("broker", "mqtt://127.0.0.1:99999", "broker: port 99999 is out of range"),
        ("broker", "mqtt://127.0.0.1:0", "broker: port 0 is out of range"),
        ("broker", "mqtt://my host:1883", "broker: 'mqtt://my host:1883' is not mqtt://HOST"),
        ("broker", "", "broker: '' is not mqtt://HOST"),
        ("keys_dir", "ke\0ys", "keys_dir: 'ke\\x00ys' is not a path"),
        ("data_dir", "", "data_dir: '' is not a path"),
        ("consensus", 0, "consensus: expected dict, got int"),
        ("members", False, "members: expected list, got bool"),
    ],
)
def test_field_that_only_up_used_to_check_is_refused_on_load(field, value, message):
    raw = default_raw()
    raw[field] = value
    with pytest.raises(ConfigError) as err:
        parse_config(raw, ROOT / "nodes.yaml")
    assert str(err.value).startswith(message)
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        # `$` would let a trailing newline through into key file names and topics.
        (lambda r: r["nodes"][2].update(id="core\n"), "nodes[2].id: 'core\\n' must be"),
        # A key that would break the line is quoted, not printed raw.
        (
            lambda r: r["genesis"]["balances"].update({"co\nre": 5}),
            "genesis.balances['co\\nre']: no such member",
        ),
        # YAML keys need not be strings; sorting 1 against None must not raise TypeError.
        (lambda r: r.update({1: "x", None: "y"}), "nodes.yaml: unknown field 1"),
    ],
)
def test_hostile_keys_and_ids_are_named_on_one_line(mutate, message):
    raw = default_raw()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_config(raw, ROOT / "nodes.yaml")
    assert str(err.value).startswith(message)
    assert len(str(err.value).splitlines()) == 1


def test_not_utf8_names_line_column_and_byte_offset(tmp_path):
    path = write(tmp_path, b"chain_id: ok\nnodes: caf\xe9\n")
    assert refusal(path) == f"{path}:2:11: not UTF-8 (byte 0xe9 at offset 23)"


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("nodes: [unclosed\n", "2:1", "expected ',' or ']', but got '<stream end>'"),
        ("chain_id: a\n  - b\n c: d\n", "3:3", "mapping values are not allowed here"),
        ("chain_id: a\n---\nchain_id: b\n", "2:1", "found another document"),
        ("chain_id: \x07\n", "1:11", "character #x0007 is not allowed in YAML"),
        ("chain_id: 2024-13-45\n", "1:11", "cannot read '2024-13-45' as timestamp"),
        ("chain_id: !!int x\n", "1:11", "cannot read 'x' as int"),
    ],
)
def test_yaml_error_is_file_line_column_problem(tmp_path, text, position, problem):
    path = write(tmp_path, text)
    assert refusal(path).startswith(f"{path}:{position}: {problem}")


@pytest.mark.parametrize(
    ("text", "position", "key", "first"),
    [
        (
            DEFAULT_TEXT + "chain_id: again\n",
            f"{DEFAULT_TEXT.count(chr(10)) + 1}:1",
            "chain_id",
            "2:1",
        ),
        ("nodes:\n  - {id: a, role: bank, id: b}\n", "2:25", "id", "2:6"),
        ("genesis:\n  balances:\n    core: 1\n    core: 2\n", "4:5", "core", "3:5"),
        ("consensus: {1: a, 1.0: b}\n", "1:19", "1.0", "1:13"),
    ],
)
def test_duplicated_key_is_named_with_both_lines(tmp_path, text, position, key, first):
    path = write(tmp_path, text)
    key_text = key if key == "1.0" else repr(key)
    assert refusal(path) == f"{path}:{position}: duplicate key {key_text} (first at {first})"


def test_merge_key_may_be_overridden_without_counting_as_duplicate(tmp_path):
    text = DEFAULT_TEXT.replace(
        "consensus:\n", "consensus: &c {batch_max_txs: 10}\nx: {<<: *c, batch_max_txs: 5}\nold:\n"
    )
    # Refused for the unknown top-level field, not for the overridden merged key.
    assert refusal(write(tmp_path, text)) == "nodes.yaml: unknown field 'old'"


@pytest.mark.parametrize("opening", ["[", "{a: ", "- "])
def test_deep_nesting_is_refused_at_the_limit_without_recursion(tmp_path, opening):
    path = write(tmp_path, opening * 100_000)
    started = time.monotonic()
    message = refusal(path)
    assert time.monotonic() - started < 10
    assert message.startswith(f"{path}:1:")
    assert message.endswith(f": nested deeper than {MAX_DEPTH} levels")


def test_nesting_up_to_the_limit_is_still_yaml(tmp_path):
    path = write(tmp_path, "[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert refusal(path) == "nodes.yaml: the top level must be a mapping of fields, not a list"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "nodes.yaml: the file is empty"),
        ("# only a comment\n", "nodes.yaml: the file is empty"),
        ("- a\n- b\n", "nodes.yaml: the top level must be a mapping of fields, not a list"),
        ("just words\n", "nodes.yaml: the top level must be a mapping of fields, not a str"),
    ],
)
def test_empty_file_and_non_mapping_top_level(tmp_path, content, message):
    assert refusal(write(tmp_path, content)).startswith(message)


def test_missing_directory_and_oversized_file(tmp_path):
    assert refusal(tmp_path / "absent.yaml").startswith(f"cannot read {tmp_path}/absent.yaml:")
    assert refusal(tmp_path) == f"cannot read {tmp_path}: Is a directory"
    path = write(tmp_path, "#" * (MAX_FILE_BYTES + 1))
    assert refusal(path) == f"{path}: larger than 4 MiB, not a network file"


def bad_files(tmp_path: Path) -> dict[str, Path]:
    """One file per kind of refusal that once reached a traceback or slipped past `keys init`."""
    files = {
        "not-utf8": b"chain_id: caf\xe9\n",
        "deep": "[" * 100_000,
        "syntax": "nodes: [unclosed\n",
        "duplicate": DEFAULT_TEXT + "chain_id: again\n",
        "chain-id": DEFAULT_TEXT.replace("chain_id: consortium-local", "chain_id: 'a/b+#'"),
        "port": DEFAULT_TEXT.replace("127.0.0.1:18830", "127.0.0.1:99999"),
        "host": DEFAULT_TEXT.replace("mqtt://127.0.0.1:18830", "'mqtt://my host:1883'"),
    }
    paths = {}
    for name, content in files.items():
        folder = tmp_path / name
        folder.mkdir()
        paths[name] = write(folder, content)
    paths["directory"] = tmp_path
    return paths


@pytest.mark.parametrize(
    "command", [["keys", "init"], ["ledger", "verify", "--node", "bank-a"]], ids=" ".join
)
def test_cli_refuses_every_bad_file_in_one_line(tmp_path, command):
    for name, path in bad_files(tmp_path).items():
        result = CliRunner().invoke(cli, [*command, "--config", str(path)])
        # SystemExit is click reporting an error; anything else is an exception that escaped.
        assert isinstance(result.exception, SystemExit), (name, result.exception)
        assert result.exit_code != 0, name
        assert result.stderr.startswith("Error: "), (name, result.stderr)
        assert len(result.stderr.splitlines()) == 1, (name, result.stderr)
        assert not (path.parent / "keys").exists(), name


def test_installed_command_prints_no_traceback(tmp_path):
    """The real entry point, on the two files that used to end in a traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        (["keys", "init"], b"chain_id: caf\xe9\n", "1:14: not UTF-8 (byte 0xe9 at offset 13)"),
        (["ledger", "verify", "--node", "bank-a"], b"[" * 100_000, "1:33: nested deeper than 32"),
    ]
    for command, content, problem in runs:
        path = write(tmp_path, content)
        done = subprocess.run(
            [sys.executable, "-m", "consortium", *command, "--config", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode != 0
        assert "Traceback" not in done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith(f"Error: {path}:{problem}")


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


def test_votes_are_durable_unless_the_file_says_otherwise(tmp_path):
    assert load_config(ROOT / "nodes.yaml").durable is True
    raw = default_raw()
    raw["durable"] = False
    assert parse_config(raw, tmp_path / "nodes.yaml").durable is False
    raw["durable"] = "no"
    with pytest.raises(ConfigError, match="durable: expected bool, got str"):
        parse_config(raw, tmp_path / "nodes.yaml")


def test_cache_budget_is_one_checked_setting(tmp_path):
    assert load_config(ROOT / "nodes.yaml").cache_mb == 128
    raw = default_raw()
    raw["cache_mb"] = 48
    assert parse_config(raw, tmp_path / "nodes.yaml").cache_mb == 48
    for bad, message in [
        ("big", "cache_mb: expected int, got str"),
        (True, "cache_mb: expected int, got bool"),
        (8, "cache_mb: 8 MiB is outside 16 to 65536"),
        (10**6, "cache_mb: 1000000 MiB is outside 16 to 65536"),
    ]:
        raw["cache_mb"] = bad
        with pytest.raises(ConfigError, match=message):
            parse_config(raw, tmp_path / "nodes.yaml")


def test_a_broker_per_organisation_has_its_own_url_and_a_local_ca_unless_told(tmp_path):
    raw = default_raw() | {"brokers": "per_node"}
    config = load_config(write(tmp_path, yaml.safe_dump(raw)))
    assert config.per_node_brokers
    assert [(b.id, b.url) for b in config.brokers] == [
        (node_id, f"mqtts://127.0.0.1:{18830 + i}") for i, node_id in enumerate(config.node_ids)
    ]
    assert config.broker_of("core").id == "core"
    assert config.generated_tls
    tls = config.broker_of("core").tls
    assert tls is not None
    assert (tls.certfile, tls.keyfile, tls.cafile) == (
        config.run_dir / "tls" / "core.crt",
        config.run_dir / "tls" / "core.key",
        config.run_dir / "tls" / "ca.crt",
    )
    shared = load_config(ROOT / "nodes.yaml")
    assert [(b.id, b.url) for b in shared.brokers] == [("shared", "mqtt://127.0.0.1:18830")]
    assert shared.broker_of("core") == shared.brokers[0]


def test_organisations_on_their_own_hosts_name_their_broker_and_certificates(tmp_path):
    raw = default_raw() | {"brokers": "per_node", "broker_tls": {"cafile": "tls/ca.crt"}}
    for index, node in enumerate(raw["nodes"]):
        node["broker"] = f"mqtts://10.0.0.{index + 1}:8883"
        node["broker_tls"] = {"certfile": f"tls/{node['id']}.crt", "keyfile": "tls/own.key"}
    config = load_config(write(tmp_path, yaml.safe_dump(raw)))
    assert not config.generated_tls
    bank_b = config.broker_of("bank-b")
    assert bank_b.url == "mqtts://10.0.0.2:8883"
    assert bank_b.tls is not None
    assert bank_b.tls.certfile == tmp_path / "tls" / "bank-b.crt"
    assert bank_b.tls.cafile == tmp_path / "tls" / "ca.crt"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw.update(brokers="mesh"), "brokers: 'mesh' is not one of shared, per_node"),
        (
            lambda raw: raw["nodes"][1].update(broker="mqtts://127.0.0.1:9000"),
            "nodes[1].broker: a node's own broker needs `brokers: per_node`",
        ),
        (
            lambda raw: (
                raw.update(brokers="per_node")
                or raw["nodes"][2].update(broker="mqtts://127.0.0.1:18830")
            ),
            "nodes[2].broker: mqtts://127.0.0.1:18830 is also bank-a's",
        ),
        (
            lambda raw: (
                raw.update(brokers="per_node") or raw["nodes"][0].update(broker="tcp://somewhere")
            ),
            "broker: 'tcp://somewhere' is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]",
        ),
        (
            lambda raw: (
                raw.update(brokers="per_node")
                or raw["nodes"][0].update(broker_tls={"certfile": "a.crt"})
            ),
            "nodes[0].broker_tls: mqtts://127.0.0.1:18830 needs certfile and keyfile",
        ),
        (
            lambda raw: raw.update(brokers="per_node", broker_tls={"certfile": "a.crt"}),
            "broker_tls: with `brokers: per_node` give only cafile here",
        ),
        (
            lambda raw: (
                raw.update(brokers="per_node")
                or raw["members"][0].update(broker="mqtts://127.0.0.1:9000")
            ),
            "members[0]: unknown field 'broker'",
        ),
        (
            lambda raw: raw.update(brokers="per_node", metrics_port=18832),
            "metrics_port: ports 18832-18836 include the broker's 18832",
        ),
    ],
)
def test_a_bad_broker_topology_is_named_in_one_line(tmp_path, change, message):
    raw = default_raw()
    change(raw)
    assert message in refusal(write(tmp_path, yaml.safe_dump(raw)))


def test_up_with_a_broker_per_node_is_remembered_until_down(tmp_path):
    from consortium.config import record_topology, recorded_topology

    path = write(tmp_path, DEFAULT_TEXT)
    config = load_config(path)
    assert not config.per_node_brokers and recorded_topology(config) is None
    record_topology(config, "per_node")
    assert load_config(path).per_node_brokers
    record_topology(config, None)
    assert not load_config(path).per_node_brokers
