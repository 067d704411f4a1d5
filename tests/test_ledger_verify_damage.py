"""`ledger verify` on a damaged store file and a tampered transaction index: a failed report with
a one-line reason, and from the command line one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from consortium import codec
from consortium.cli.main import cli
from consortium.devnet import Devnet
from consortium.ledger.ledger import Ledger, store_path
from consortium.ledger.verify import VerifyReport, verify_store
from tests.ledger_helpers import certify, devnet, wallets

NODE = "bank-a"
TABLES = ("meta", "blocks", "txs", "state", "consensus")  # the store's schema


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Devnet, Path, bytes]:
    """Three committed blocks of three transactions each, checkpointed into one file."""
    net = devnet(tmp_path_factory.mktemp("verify-damage"))
    path = store_path(net.config, NODE)
    ledger = Ledger(net.config, net.keys, path)
    w = wallets(net)
    for day in (1, 2, 3):
        raws = [
            w["regulator"].sign("clock.advance", {"days": day}).raw,
            w["supplier-a"].sign("clock.advance", {"days": 1}).raw,
            w["bank-b"].sign("member.freeze", {"member": "supplier-c"}).raw,
        ]
        txs = [ledger.chain.admit(raw) for raw in raws]
        executed, _ = ledger.chain.propose(txs, view=0, proposer=NODE)
        ledger.commit(executed.hash, certify(net, 0, executed.header.height, executed.hash))
    ledger.close()
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return net, path, path.read_bytes()


@pytest.fixture
def store(
    chain: tuple[Devnet, Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Devnet, Path]:
    """The honest store, restored before each test (the damage of the last one undone).

    The working directory is elsewhere, so reasons name the store by its absolute path."""
    net, path, pristine = chain
    monkeypatch.chdir(tmp_path)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(pristine)
    return net, path


def _verify(store: tuple[Devnet, Path]) -> VerifyReport:
    net, path = store
    return verify_store(net.config, net.keys, path)


def _sql(path: Path, statement: str, params: tuple = ()) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute(statement, params)
        db.commit()


def _tx_id(path: Path, height: int, position: int) -> bytes:
    with closing(sqlite3.connect(path)) as db:
        (tx_id,) = db.execute(
            "SELECT tx_id FROM txs WHERE height = ? AND position = ?", (height, position)
        ).fetchone()
    return tx_id


def _single_reason(report: VerifyReport) -> str:
    assert report.ok is False
    assert len(report.errors) == 1, report.errors
    (reason,) = report.errors
    assert "\n" not in reason
    return reason


# -- the file itself ---------------------------------------------------------------------------


def _truncate_to_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _truncate_to_100(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(path.stat().st_size))


def _text(path: Path) -> None:
    path.write_text("height,hash\n0,00ff\n1,ab12\n" * 200)


def _missing(path: Path) -> None:
    path.unlink()


FILE_DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated to half": (_truncate_to_half, "file is truncated"),
    "truncated to 100 bytes": (_truncate_to_100, "file is truncated: 100 of"),
    "empty": (_empty, "file is empty"),
    "random bytes": (_random_bytes, "file is not a database"),
    "text": (_text, "file is not a database"),
    "missing": (_missing, "file does not exist"),
}


@pytest.mark.parametrize("damage", FILE_DAMAGE)
def test_a_damaged_file_fails_with_a_one_line_reason(store, damage):
    _, path = store
    spoil, problem = FILE_DAMAGE[damage]
    spoil(path)
    reason = _single_reason(_verify(store))
    assert reason.startswith(f"store {path}: {problem}"), reason


def test_the_reason_names_the_store_as_the_user_would(store, monkeypatch):
    """Run beside nodes.yaml, the store is named by its path from there."""
    net, path = store
    monkeypatch.chdir(net.config.path.parent)
    path.write_bytes(b"")
    reason = _single_reason(_verify(store))
    assert reason == f"store data/{NODE}/ledger.sqlite: file is empty"


@contextmanager
def _locked(path: Path, journal: str) -> Iterator[None]:
    """Another connection holding the file: in WAL mode only an exclusive locking mode keeps
    readers out; in rollback-journal mode an exclusive transaction does."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        if journal == "wal":
            holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        else:
            holder.execute("PRAGMA journal_mode = DELETE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE meta SET value = value")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.parametrize("journal", ["wal", "rollback"])
def test_a_locked_file_fails_soon_and_says_locked(store, journal):
    _, path = store
    with _locked(path, journal):
        started = time.monotonic()
        report = _verify(store)
        elapsed = time.monotonic() - started
    reason = _single_reason(report)
    assert reason.startswith(f"store {path}: database is locked"), reason
    assert elapsed < 4.5  # a short wait, well below SQLite's default of 5 s per statement


@pytest.mark.parametrize("table", TABLES)
def test_a_missing_table_is_damage(store, table):
    _, path = store
    _sql(path, f"DROP TABLE {table}")
    reason = _single_reason(_verify(store))
    assert reason == f"store {path}: missing tables: {table}"


def test_a_state_key_that_is_not_text_is_reported_not_raised(store):
    _, path = store
    _sql(path, "INSERT INTO state (key, value) VALUES (?, ?)", (b"clock", codec.encode(1)))
    report = _verify(store)
    assert report.ok is False
    assert "state table: keys that are not text: 1" in report.errors


# -- the tables the node trusts besides the blocks ---------------------------------------------


def test_an_edited_genesis_hash_in_meta_is_caught(store):
    _, path = store
    _sql(path, "UPDATE meta SET value = ? WHERE key = 'genesis_hash'", (codec.encode(bytes(32)),))
    reason = _single_reason(_verify(store))
    assert reason.startswith(f"meta table: genesis hash {bytes(32).hex()} is not "), reason


def test_an_edited_chain_id_in_meta_is_caught(store):
    _, path = store
    _sql(path, "UPDATE meta SET value = ? WHERE key = 'chain_id'", (codec.encode("other"),))
    reason = _single_reason(_verify(store))
    assert reason == "meta table: chain id is 'other', not 'consortium-dev'"


def test_a_block_row_below_genesis_is_caught(store):
    _, path = store
    _sql(
        path,
        "INSERT INTO blocks (height, hash, header, txs, receipts, certificate)"
        " SELECT -1, zeroblob(32), header, txs, receipts, certificate FROM blocks WHERE height = 1",
    )
    reason = _single_reason(_verify(store))
    assert reason == "blocks table: 5 rows for the 4 heights 0 to 3"


# -- the transaction index ---------------------------------------------------------------------


def test_an_index_row_moved_to_another_block_is_caught(store):
    _, path = store
    tx_id = _tx_id(path, 2, 1)
    _sql(path, "UPDATE txs SET height = 3 WHERE height = 2 AND position = 1")
    reason = _single_reason(_verify(store))
    assert reason == (
        f"tx index: transaction {tx_id.hex()} of block 2 position 1 is indexed at block 3 position 1"
    )


def test_an_index_row_moved_to_another_position_is_caught(store):
    _, path = store
    tx_id = _tx_id(path, 2, 1)
    _sql(path, "UPDATE txs SET position = 0 WHERE height = 2 AND position = 1")
    reason = _single_reason(_verify(store))
    assert reason == (
        f"tx index: transaction {tx_id.hex()} of block 2 position 1 is indexed at block 2 position 0"
    )


def test_an_index_row_with_another_tx_id_is_caught(store):
    _, path = store
    tx_id = _tx_id(path, 2, 1)
    forged = bytes(31) + b"\x01"
    _sql(path, "UPDATE txs SET tx_id = ? WHERE height = 2 AND position = 1", (forged,))
    reason = _single_reason(_verify(store))
    assert reason == (
        f"tx index: block 2 position 1 is indexed as transaction {forged.hex()}, not {tx_id.hex()}"
    )


def test_a_deleted_index_row_is_caught(store):
    _, path = store
    tx_id = _tx_id(path, 3, 2)
    _sql(path, "DELETE FROM txs WHERE height = 3 AND position = 2")
    reason = _single_reason(_verify(store))
    assert reason == f"tx index: transaction {tx_id.hex()} of block 3 position 2 has no index row"


@pytest.mark.parametrize("where", ["unknown id past the head", "known id in an earlier block"])
def test_an_extra_index_row_is_caught(store, where):
    """An extra row for a committed transaction in an earlier block changes what
    `lookup_request` answers (it takes the first height), so it is as wrong as an unknown id."""
    _, path = store
    if where == "unknown id past the head":
        row = (b"\xee" * 32, 9, 0)
    else:
        row = (_tx_id(path, 3, 0), 1, 0)
    _sql(path, "INSERT INTO txs (tx_id, height, position) VALUES (?, ?, ?)", row)
    reason = _single_reason(_verify(store))
    assert reason == (
        f"tx index: row (tx {row[0].hex()}, height {row[1]}, position {row[2]})"
        " matches no transaction in the blocks"
    )


def test_a_malformed_index_row_is_reported_not_raised(store):
    _, path = store
    _sql(path, "INSERT INTO txs (tx_id, height, position) VALUES ('text', 'two', 0)")
    reason = _single_reason(_verify(store))
    assert reason == (
        "tx index: row (tx 'text', height 'two', position 0) matches no transaction in the blocks"
    )


# -- the command line --------------------------------------------------------------------------


def _cli(net: Devnet, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--node", NODE, "--config", str(net.config.path)])
    # Only SystemExit (click's own exit) may end the command: anything else is a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("damage", FILE_DAMAGE)
def test_cli_reports_a_damaged_file_in_one_line(store, damage):
    net, path = store
    spoil, problem = FILE_DAMAGE[damage]
    spoil(path)

    code, stdout, stderr = _cli(net, "ledger", "verify")
    assert code == 1
    assert stdout == ""
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith(f"{NODE}: FAILED: store {path}: {problem}"), stderr

    code, stdout, _ = _cli(net, "ledger", "verify", "--json")
    assert code == 1
    report = json.loads(stdout)
    assert {"ok", "height", "head_hash", "errors"} <= report.keys()
    assert report["ok"] is False
    assert len(report["errors"]) == 1
    assert report["errors"][0].startswith(f"store {path}: {problem}")

    code, stdout, stderr = _cli(net, "ledger", "show")
    assert code != 0
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith(f"Error: store {path}: {problem}"), stderr


@pytest.mark.parametrize("damage", FILE_DAMAGE)
def test_audit_reports_a_damaged_file_in_one_line(store, damage):
    net, path = store
    spoil, problem = FILE_DAMAGE[damage]
    spoil(path)
    code, stdout, stderr = _cli(net, "audit")
    assert code != 0 and stdout == ""
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith(f"Error: store {path}: {problem}"), stderr


def test_cli_reports_a_locked_file_in_one_line(store):
    net, path = store
    with _locked(path, "wal"):
        code, _, stderr = _cli(net, "ledger", "verify")
    assert code == 1
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith(f"{NODE}: FAILED: store {path}: database is locked"), stderr


def test_cli_fails_on_an_edited_index_row(store):
    net, path = store
    _sql(path, "UPDATE txs SET position = 2 WHERE height = 1 AND position = 0")
    code, _, stderr = _cli(net, "ledger", "verify")
    assert code == 1
    lines = stderr.splitlines()
    assert lines[0].startswith(f"{NODE}: FAILED height 3 ")
    assert len(lines) == 2 and "tx index:" in lines[1] and "block 1 position 0" in lines[1]


def test_cli_show_names_the_block_whose_receipts_do_not_decode(store):
    net, path = store
    _sql(path, "UPDATE blocks SET receipts = X'c1' WHERE height = 3")
    code, stdout, stderr = _cli(net, "ledger", "show")
    assert code != 0
    assert stdout == ""  # nothing half-printed before the error
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith(f"Error: store {path}: block 3: "), stderr


def test_a_real_process_prints_no_traceback(store):
    net, path = store
    _random_bytes(path)
    config = ["--node", NODE, "--config", str(net.config.path)]
    for command in (["verify"], ["verify", "--json"], ["show"]):
        done = subprocess.run(
            [sys.executable, "-m", "consortium", "ledger", *command, *config],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).resolve().parents[1],  # the checkout, as a user runs it
            env={**os.environ, "COLUMNS": "40"},
        )
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stdout + done.stderr
        output = (done.stdout + done.stderr).strip().splitlines()
        assert len(output) == 1 and "file is not a database" in output[0], output
