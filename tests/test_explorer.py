"""The explorer over HTTP, in process: every page and endpoint against a small real store, and bad
input answered with a 404 or 400 page, never a traceback or a 500."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from consortium.certificate import CommitCertificate
from consortium.devnet import Devnet
from consortium.explorer.app import create_app
from consortium.explorer.network import NetworkHistory
from consortium.ledger.ledger import Ledger, store_path
from tests.ledger_helpers import certify, devnet, wallets


@dataclass(frozen=True)
class Chain:
    net: Devnet
    draft_id: str
    failed_id: str
    block_hashes: dict[int, str]


def _commit(net: Devnet, ledger: Ledger, raws: list[bytes], forge: bool = False) -> str:
    txs = [ledger.chain.admit(raw) for raw in raws]
    executed, _ = ledger.chain.propose(txs, view=0, proposer="bank-a")
    cert = certify(net, 0, executed.header.height, executed.hash)
    if forge:  # one signature flipped: the explorer must catch it, the store does not care
        (node, _forged), *rest = cert.signatures
        cert = CommitCertificate(
            cert.view, cert.height, cert.block_hash, ((node, bytes(64)), *rest)
        )
    ledger.commit(executed.hash, cert)
    return executed.hash.hex()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    net = devnet(tmp_path_factory.mktemp("explorer"))
    writer = Ledger(net.config, net.keys, store_path(net.config, "regulator"))
    w = wallets(net)
    draft = w["supplier-a"].sign(
        "receivable.draft", {"debtor": "core", "amount": 1_000_000, "due_day": 90}
    )
    failed = w["supplier-b"].sign("receivable.pledge", {"receivable": "rcv-0", "bank": "bank-a"})
    hashes = {
        1: _commit(
            net,
            writer,
            [
                draft.raw,
                failed.raw,
                w["regulator"].sign("member.freeze", {"member": "agency-3"}).raw,
            ],
        )
    }
    issue = w["warehouse-1"].sign(
        "warehouse.issue",
        {
            "owner": "supplier-a",
            "lot": "lot-1",
            "commodity": "copper",
            "quantity": 40,
            "grade": "A",
            "inspection": bytes(range(32)),
        },
    )
    hashes[2] = _commit(net, writer, [issue.raw])
    unfreeze = w["regulator"].sign("member.unfreeze", {"member": "agency-3"})
    hashes[3] = _commit(net, writer, [unfreeze.raw], forge=True)
    writer.close()
    return Chain(net, draft.tx_id.hex(), failed.tx_id.hex(), hashes)


def _history(net: Devnet) -> NetworkHistory:
    roles = {n.id: n.role for n in net.config.nodes}
    history = NetworkHistory(roles, wall_offset_s=1_700_000_000.0)
    statuses = {
        node: {
            "id": node,
            "role": role,
            "view": 0,
            "primary": "agency",
            "height": 3,
            "head_hash": "ab" * 32,
            "tx_per_s": 12,
            "mempool": 0,
            "metrics_url": f"http://127.0.0.1:{19100 + i}/metrics",
            "clock_offset_ms": 1_000,
            "timeline": [[1, 10 + i, 20 + i, 30 + i, 31 + i], [3, 50, None, None, None]],
        }
        for i, (node, role) in enumerate(roles.items())
        if node != "core"
    }
    ages = {node: 0.1 for node in statuses}
    history.observe(statuses, ages, now=100.0)
    history.observe(statuses, ages, now=101.5)
    return history


@pytest.fixture(scope="module")
def client(chain: Chain) -> Iterator[TestClient]:
    app = create_app(
        chain.net.config, chain.net.keys, "regulator", _history(chain.net), follow_bus=False
    )
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as test_client:
        yield test_client


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_network_page_shows_every_node_alerts_and_the_latest_consensus(client: TestClient):
    page = client.get("/")
    assert page.status_code == 200
    text = _text(page.text)
    for node in ("bank-a", "bank-b", "core", "agency", "regulator"):
        assert node in text
    assert "core is down or silent" in text
    assert '<script src="/static/network.js">' in page.text
    snapshot = client.get("/api/network").json()
    assert [n["id"] for n in snapshot["nodes"]] == [
        "bank-a",
        "bank-b",
        "core",
        "agency",
        "regulator",
    ]
    assert snapshot["nodes"][2]["health"] == "down"
    assert snapshot["nodes"][0]["metrics_url"] == "http://127.0.0.1:19100/metrics"
    assert snapshot["latest_block"]["height"] == 1
    assert snapshot["tx_per_s"][-1][1] == 12


def test_the_event_stream_sends_snapshots(client: TestClient):
    with client.stream("GET", "/api/events?count=2") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = [line for line in stream.iter_lines() if line.startswith("data: ")]
    assert len(events) == 2
    assert json.loads(events[0].removeprefix("data: "))["nodes"][0]["id"] == "bank-a"
    assert client.get("/api/events?count=0").status_code == 400
    assert client.get("/api/events?count=x").json() == {
        "error": "count: 'x' is not a block height (a whole number)"
    }


def test_block_list_pages_newest_first(client: TestClient):
    page = client.get("/blocks")
    assert page.status_code == 200
    heights = re.findall(r'<td><a href="/blocks/(\d+)">', page.text)
    assert heights == ["3", "2", "1", "0"]
    one = client.get("/blocks?before=2&limit=1")
    assert re.findall(r'<td><a href="/blocks/(\d+)">', one.text) == ["2"]
    assert 'href="/blocks?before=1&limit=1"' in one.text
    assert client.get("/blocks?before=-1").status_code == 400
    assert client.get("/blocks?limit=100000").status_code == 400


def test_block_page_has_header_receipts_certificate_and_consensus(chain: Chain, client: TestClient):
    page = client.get("/blocks/1")
    assert page.status_code == 200
    text = _text(page.text)
    assert chain.block_hashes[1] in text
    assert "failed: no receivable rcv-0" in text
    assert "valid: 4 signatures checked" in text
    assert text.count("bad signature") == 0
    assert 'id="consensus-timeline"' in page.text and "bank-a: pre_prepare at +0 ms" in page.text
    forged = _text(client.get("/blocks/3").text)
    assert "INVALID: bad commit signature by" in forged and "bad signature" in forged
    assert "No phase times for this block" in _text(client.get("/blocks/2").text)
    assert "Genesis has no certificate" in _text(client.get("/blocks/0").text)


def test_transaction_page_shows_outcome_block_and_the_senders_other_txs(
    chain: Chain, client: TestClient
):
    ok = client.get(f"/tx/{chain.draft_id}")
    assert ok.status_code == 200
    text = _text(ok.text)
    assert "committed" in text and "receivable.draft" in text and "supplier-a" in text
    failed = _text(client.get(f"/tx/{chain.failed_id.upper()}").text)
    assert "failed: no receivable rcv-0" in failed
    assert "Other transactions by supplier-b" in failed


def test_members_and_a_member_page(client: TestClient):
    members = client.get("/members").text
    assert "supplier-a" in members and "warehouse-1" in members
    assert 'class="bad">frozen' not in members  # agency-3 was unfrozen in block 3
    page = client.get("/members/supplier-a")
    assert page.status_code == 200
    text = _text(page.text)
    assert "1,000,000" in text  # the receivable's amount
    assert "copper (A)" in text  # the warehouse receipt
    assert "Credit score 500" in text and "confirmed_amount" in text
    assert "receivable.draft" in text  # its recent transactions


def test_audit_page_and_csv_export(chain: Chain, client: TestClient):
    page = _text(client.get("/audit").text)
    assert "Rejected attempts (1)" in page and "no inconsistencies" in page
    export = client.get("/audit/rejected.csv")
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert rows == [
        {
            "height": "1",
            "tx_id": chain.failed_id,
            "sender": "supplier-b",
            "op": "receivable.pledge",
            "reason": "no receivable rcv-0",
        }
    ]


def test_search_box_finds_heights_ids_hashes_members_and_operations(
    chain: Chain, client: TestClient
):
    def target(query: str) -> str:
        answer = client.get("/search", params={"q": query})
        assert answer.status_code == 303, answer.text
        return answer.headers["location"]

    assert target("2") == "/blocks/2"
    assert target(chain.draft_id) == f"/tx/{chain.draft_id}"
    assert target(chain.block_hashes[2].upper()) == "/blocks/2"
    assert target("supplier-a") == "/members/supplier-a"
    assert target("receivable.pledge") == "/search?op=receivable.pledge"
    missing = client.get("/search", params={"q": "no-such-thing"})
    assert missing.status_code == 404 and "nothing matches" in missing.text


def test_search_filters_and_csv(chain: Chain, client: TestClient):
    page = client.get("/search", params={"member": "supplier-b", "outcome": "failed"})
    assert page.status_code == 200
    assert chain.failed_id[:16] in page.text and chain.draft_id[:16] not in page.text
    ranged = client.get("/search", params={"op": "member.unfreeze", "from": "1", "to": "2"})
    assert "0 transactions" in _text(ranged.text)
    export = client.get("/search", params={"outcome": "ok", "format": "csv"})
    assert [row["op"] for row in csv.DictReader(io.StringIO(export.text))] == [
        "member.unfreeze",
        "warehouse.issue",
        "member.freeze",
        "receivable.draft",
    ]
    assert client.get("/search").status_code == 200


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/blocks/99", 404, "no block at height 99 (the head is 3)"),
        ("/blocks/abc", 400, "'abc' is not a block height"),
        ("/blocks/99999999999999999999999", 400, "is not a block height"),
        ("/blocks/1?offset=x", 400, "offset: 'x' is not a block height"),
        ("/blocks/1?offset=50", 400, "offset 50: the block has 3 transactions"),
        ("/tx/" + "0" * 64, 404, "no transaction 0000"),
        ("/tx/xyz", 400, "'xyz' is not a transaction id (64 hexadecimal digits)"),
        ("/tx/" + "g" * 64, 400, "is not a transaction id"),
        ("/members/nobody", 404, "no member 'nobody' on this chain"),
        ("/members/Bad!Id", 400, "is not a member id"),
        ("/search?outcome=maybe", 400, "outcome: 'maybe' is not one of ok, failed"),
        ("/search?from=9&to=2", 400, "from 9 is above to 2"),
        ("/search?member=%00", 400, "is not a member id"),
        ("/search?q=" + "9" * 300, 400, "longer than 200 characters"),
        ("/search?q=" + "9" * 30, 400, "is not a block height"),
        ("/no/such/page", 404, "no such page"),
    ],
)
def test_bad_input_is_a_page_with_a_message(
    client: TestClient, path: str, status: int, message: str
):
    answer = client.get(path)
    assert answer.status_code == status
    assert message in answer.text.replace("&#39;", "'")
    assert "Traceback" not in answer.text and "<h1" in answer.text


def test_hostile_paths_never_get_a_server_error(chain: Chain, client: TestClient):
    paths = [
        "/blocks/%00",
        "/blocks/" + "1" * 5000,
        "/blocks/\uff11",  # a full-width digit one
        "/tx/" + "%ff" * 32,
        "/tx/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/members/" + "a" * 40,
        "/members/%3Cscript%3E",
        "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
        "/search?q=%00",
        "/search?op=" + "x" * 100,
        "/search?from=1e9",
        "/blocks?before=" + "9" * 40,
        "/static/../app.py",
        "/api/events?count=99999999",
    ]
    for path in paths:
        answer = client.get(path)
        assert answer.status_code in (400, 404), (path, answer.status_code, answer.text[:200])
        assert "<script>alert" not in answer.text


def test_assets_are_served_by_the_explorer_itself(client: TestClient):
    for asset in ("/static/explorer.css", "/static/network.js"):
        answer = client.get(asset)
        assert answer.status_code == 200
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", answer.text), asset
    page = client.get("/blocks/1").text
    assert not re.search(r"""(src|href)=["']https?://""", page)


def test_a_missing_store_is_a_one_line_503(tmp_path: Path, chain: Chain):
    app = create_app(
        chain.net.config, chain.net.keys, "bank-b", _history(chain.net), follow_bus=False
    )
    with TestClient(app, raise_server_exceptions=False) as other:
        answer = other.get("/blocks")
        assert answer.status_code == 503
        assert "ledger.sqlite: file does not exist" in answer.text
        assert other.get("/").status_code == 200  # the live part needs no store
