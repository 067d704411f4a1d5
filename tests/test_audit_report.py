"""The regulator's audit read from a node's store: open tokens, failed receipts with their
reasons, freezes, and money conservation; readable while the node keeps writing; and the
securitisation tables of its text form."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from consortium.cli.audit_cmd import audit, render_audit
from consortium.cli.common import ConsortiumGroup
from consortium.contracts import audit_report
from consortium.devnet import Devnet
from consortium.ledger.ledger import Ledger, store_path
from consortium.scenarios.ledger_audit import _jsonable, regulator_audit
from consortium.scenarios.ledger_view import NodeLedger
from tests.contracts_helpers import Network, issued_pool
from tests.ledger_helpers import certify, devnet, wallets


def commit_block(net: Devnet, ledger: Ledger, raws: list[bytes]) -> None:
    txs = [ledger.chain.admit(raw) for raw in raws]
    executed, _ = ledger.chain.propose(txs, view=0, proposer="bank-a")
    ledger.commit(executed.hash, certify(net, 0, executed.header.height, executed.hash))


def test_audit_lists_open_receivables_rejections_and_freezes(tmp_path: Path):
    net = devnet(tmp_path)
    writer = Ledger(net.config, net.keys, store_path(net.config, "regulator"))
    w = wallets(net)
    draft = w["supplier-a"].sign(
        "receivable.draft", {"debtor": "core", "amount": 1000, "due_day": 90}
    )
    commit_block(
        net,
        writer,
        [
            draft.raw,
            w["supplier-b"]
            .sign("receivable.pledge", {"receivable": "rcv-0", "bank": "bank-a"})
            .raw,
            w["regulator"].sign("member.freeze", {"member": "agency-3"}).raw,
        ],
    )
    reader = NodeLedger(net.config, "regulator")
    report = regulator_audit(reader, net.config)
    assert report["height"] == 1
    assert [r["state"] for r in report["open_receivables"]] == ["DRAFTED"]
    assert report["open_receivables"][0]["holder"] == "supplier-a"
    assert report["open"]["receivables"] == 1 and report["open_loans"] == []
    assert report["rejected_txs"] == [
        {
            "height": 1,
            "tx_id": report["rejected_txs"][0]["tx_id"],
            "sender": "supplier-b",
            "op": "receivable.pledge",
            "reason": "no receivable rcv-0",
        }
    ]
    assert report["frozen"] == ["agency-3"]
    assert report["problems"] == []
    assert report["total_money"] == report["genesis_money"]

    # The node keeps writing while the regulator's reader stays open.
    commit_block(net, writer, [w["regulator"].sign("member.unfreeze", {"member": "agency-3"}).raw])
    again = regulator_audit(reader, net.config)
    assert again["height"] == 2 and again["frozen"] == []
    reader.close()
    writer.close()


def test_audit_command_prints_json_and_fails_in_one_line_without_a_store(tmp_path: Path):
    net = devnet(tmp_path)
    group = ConsortiumGroup(commands={"audit": audit})
    missing = CliRunner().invoke(group, ["audit", "--config", str(net.config.path)])
    assert missing.exit_code != 0
    assert (
        "ledger.sqlite: file does not exist" in missing.output and "Traceback" not in missing.output
    )
    Ledger(net.config, net.keys, store_path(net.config, "regulator")).close()
    result = CliRunner().invoke(group, ["audit", "--json", "--config", str(net.config.path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in ("open_receivables", "open_loans", "rejected_txs", "exposure", "overdue", "frozen"):
        assert key in report
    assert report["height"] == 0 and report["rejected_txs"] == []


def test_the_audit_shows_pools_tranches_last_report_and_holdings():
    net = Network()
    pool, loans = issued_pool(net)
    net.advance_to(30)
    net.run("supplier-a", "loan.repay", loan=loans[0], amount=525_000)
    net.run("bank-a", "pool.distribute", pool=pool, payments=None)
    report = _jsonable(audit_report(net.state)) | {
        "node": "regulator",
        "height": net.height,
        "open_receivables": [],
        "open_loans": [],
        "rejected_txs": [],
    }
    json.dumps(report)  # what `audit --json` prints
    console = Console(record=True, width=200)
    render_audit(report, console)
    text = console.export_text()
    assert f"tranches of {pool} (senior first)" in text
    assert "rating-1 AAA" in text and "rating-1 BB" in text
    assert f"last servicing report of {pool}: no. 1, day 30: collected 525,000" in text
    holdings = [line.split() for line in text.splitlines() if "investor-2" in line]
    assert any("junior" in row and "300" in row for row in holdings)
