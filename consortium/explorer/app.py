"""The explorer's web application (Starlette): pages, the live event stream, CSV exports.

Store reads run in Starlette's thread pool (plain `def` endpoints), each on a connection of its
own, so a slow page never holds up the event stream. Bad input never reaches a traceback: an
unknown block, transaction or member is a 404 page, a malformed id or query a 400, an unreadable
store a 503 naming the file's problem; anything else is logged and shown as a one-line 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from consortium.config import NetworkConfig
from consortium.contracts.operations import OPERATIONS
from consortium.errors import ConfigError
from consortium.explorer.feed import feed_history
from consortium.explorer.network import NetworkHistory
from consortium.explorer.reads import (
    BLOCKS_PER_PAGE,
    MAX_BLOCKS_PER_PAGE,
    OUTCOMES,
    BadQuery,
    ChainReads,
    NotFound,
    parse_height,
    parse_hex_id,
    parse_member_id,
)
from consortium.keys import KeyDirectory
from consortium.ledger.store import StoreError
from consortium.ledger.verify import store_errors
from consortium.scenarios.ledger_audit import regulator_audit, regulator_node
from consortium.scenarios.ledger_view import NodeLedger

log = logging.getLogger("consortium.explorer")

HERE = Path(__file__).parent
TXS_PER_BLOCK_PAGE = 250
EVENT_INTERVAL_S = 1.0
MAX_EVENT_COUNT = 10_000
MAX_QUERY_CHARS = 200
REJECTED_COLUMNS = ("height", "tx_id", "sender", "op", "reason")
SEARCH_COLUMNS = ("height", "position", "tx_id", "sender", "nonce", "op", "ok", "reason")


class Explorer:
    """What the pages need: the config, the store reads, and the live network history."""

    def __init__(
        self,
        config: NetworkConfig,
        keys: KeyDirectory,
        node_id: str,
        history: NetworkHistory,
    ) -> None:
        self.config = config
        self.reads = ChainReads(config, keys, node_id)
        self.history = history
        self.node_id = node_id
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["amount"] = _amount
        self.templates.env.filters["short"] = _short
        self.templates.env.filters["pretty"] = _pretty
        self.templates.env.globals["chain_id"] = config.chain_id
        self.templates.env.globals["source_node"] = node_id
        self.closing = asyncio.Event()

    def close_streams(self) -> None:
        """End every event stream at its next tick: a server shutting down waits for them."""
        self.closing.set()

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        return self.templates.TemplateResponse(
            request, name, {"active": name.removesuffix(".html"), **context}, status_code
        )

    # -- pages --------------------------------------------------------------------------

    def network(self, request: Request) -> Response:
        snapshot = self.history.snapshot()
        # Inside <script>, "</" could end the element early: heartbeats are not trusted text.
        initial = json.dumps(snapshot).replace("</", "<\\/")
        return self.page(request, "network.html", snapshot=snapshot, initial=initial)

    def blocks(self, request: Request) -> Response:
        before = _optional(request, "before", parse_height)
        limit = _optional(request, "limit", parse_height) or BLOCKS_PER_PAGE
        if not 1 <= limit <= MAX_BLOCKS_PER_PAGE:
            raise BadQuery(f"limit must be from 1 to {MAX_BLOCKS_PER_PAGE}")
        rows, head = self.reads.block_list(before, limit)
        older = rows[-1].height - 1 if rows and rows[-1].height > 0 else None
        newer = None
        if rows and rows[0].height < head:
            newer = min(head, rows[0].height + limit)
        return self.page(
            request, "blocks.html", rows=rows, head=head, older=older, newer=newer, limit=limit
        )

    def block(self, request: Request) -> Response:
        height = parse_height(request.path_params["height"])
        offset = _optional(request, "offset", parse_height) or 0
        block = self.reads.block(height)
        txs = block["txs"]
        if offset and offset >= len(txs):
            raise BadQuery(f"offset {offset}: the block has {len(txs)} transactions")
        return self.page(
            request,
            "block.html",
            block=block,
            txs=txs[offset : offset + TXS_PER_BLOCK_PAGE],
            offset=offset,
            per_page=TXS_PER_BLOCK_PAGE,
            failed=sum(not t.ok for t in txs),
            timeline=self.history.block_timeline(height),
        )

    def transaction(self, request: Request) -> Response:
        tx_id = parse_hex_id(request.path_params["tx_id"], "transaction id")
        tx, block_hash, others = self.reads.transaction(tx_id)
        return self.page(request, "tx.html", tx=tx, block_hash=block_hash, others=others)

    def members(self, request: Request) -> Response:
        return self.page(request, "members.html", members=self.reads.member_ids())

    def member(self, request: Request) -> Response:
        member_id = parse_member_id(request.path_params["member_id"])
        return self.page(request, "member.html", member=self.reads.member(member_id))

    def audit(self, request: Request) -> Response:
        return self.page(request, "audit.html", report=self._audit())

    def audit_csv(self, request: Request) -> Response:
        rows = self._audit()["rejected_txs"]
        return _csv("rejected-attempts.csv", REJECTED_COLUMNS, rows)

    def _audit(self) -> dict[str, Any]:
        try:
            node = regulator_node(self.config)
        except ConfigError as exc:
            raise NotFound(str(exc)) from None
        ledger = NodeLedger(self.config, node)
        try:
            with store_errors(ledger.path):
                return regulator_audit(ledger, self.config)
        finally:
            ledger.close()

    def search(self, request: Request) -> Response:
        query = (request.query_params.get("q") or "").strip()
        if len(query) > MAX_QUERY_CHARS:
            raise BadQuery(f"the query is longer than {MAX_QUERY_CHARS} characters")
        if query:
            return self._find(query)
        filters = _search_filters(request)
        if not any(v is not None for v in filters.values()):
            return self.page(request, "search.html", result=None, filters=filters, ops=_ops())
        result = self.reads.search(
            filters["member"], filters["op"], filters["outcome"], filters["low"] or 1,
            filters["high"],
        )  # fmt: skip
        if request.query_params.get("format") == "csv":
            rows = [asdict(row) for row in result.rows]
            return _csv("search.csv", SEARCH_COLUMNS, rows)
        return self.page(request, "search.html", result=result, filters=filters, ops=_ops())

    def _find(self, query: str) -> Response:
        """One box for everything: a height, a transaction id or block hash, a member id, an
        operation name."""
        if query.isdigit():
            height = parse_height(query)
            return RedirectResponse(f"/blocks/{height}", status_code=303)
        if len(query) == 64 and all(c in "0123456789abcdefABCDEF" for c in query):
            kind, height = self.reads.locate(bytes.fromhex(query))
            target = f"/tx/{query.lower()}" if kind == "tx" else f"/blocks/{height}"
            return RedirectResponse(target, status_code=303)
        if "." in query and query in _ops():
            return RedirectResponse(f"/search?op={query}", status_code=303)
        member_id = parse_member_id(query.lower()) if query.islower() else None
        if member_id is not None and self.reads.member_exists(member_id):
            return RedirectResponse(f"/members/{member_id}", status_code=303)
        raise NotFound(
            f"nothing matches {query[:80]!r}: try a block height, a transaction id, a block hash,"
            " a member id or an operation"
        )

    # -- live ---------------------------------------------------------------------------

    async def network_json(self, request: Request) -> Response:
        return JSONResponse(self.history.snapshot())

    async def events(self, request: Request) -> Response:
        """Server-sent events: the network's snapshot once a second (`count` limits them)."""
        count = _optional(request, "count", parse_height)
        if count is not None and not 1 <= count <= MAX_EVENT_COUNT:
            raise BadQuery(f"count must be from 1 to {MAX_EVENT_COUNT}")

        async def stream() -> AsyncIterator[str]:
            sent = 0
            while count is None or sent < count:
                yield f"data: {json.dumps(self.history.snapshot())}\n\n"
                sent += 1
                if count is not None and sent >= count:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), EVENT_INTERVAL_S)
                if self.closing.is_set():
                    return

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- errors -------------------------------------------------------------------------

    def error_page(self, request: Request, status: int, title: str, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return self.page(request, "error.html", status, title=title, message=message, code=status)


def _optional(request: Request, name: str, parse: Any) -> Any:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return parse(value)
    except BadQuery as exc:
        raise BadQuery(f"{name}: {exc}") from None


def _search_filters(request: Request) -> dict[str, Any]:
    member = request.query_params.get("member") or None
    if member is not None:
        member = parse_member_id(member)
    op = request.query_params.get("op") or None
    if op is not None and (len(op) > 64 or not op.isprintable()):
        raise BadQuery("op: not an operation name")
    outcome = request.query_params.get("outcome") or None
    if outcome is not None and outcome not in OUTCOMES:
        raise BadQuery(f"outcome: {outcome[:20]!r} is not one of {', '.join(OUTCOMES)}")
    low = _optional(request, "from", parse_height)
    high = _optional(request, "to", parse_height)
    if low is not None and high is not None and low > high:
        raise BadQuery(f"from {low} is above to {high}")
    return {"member": member, "op": op, "outcome": outcome, "low": low, "high": high}


def _ops() -> list[str]:
    return sorted(OPERATIONS)


def _csv(filename: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(row.get(key)) for key in columns})
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _csv_cell(value: Any) -> Any:
    """Cells a spreadsheet would run as a formula are quoted with a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _amount(value: Any) -> str:
    return f"{value:,}" if type(value) is int else ("" if value is None else str(value))


def _short(value: Any, length: int = 12) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= length else text[:length] + "…"


def _pretty(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False)


def create_app(
    config: NetworkConfig,
    keys: KeyDirectory,
    node_id: str,
    history: NetworkHistory,
    follow_bus: bool = True,
) -> Starlette:
    """The application; with `follow_bus` it feeds `history` from the heartbeats while it runs."""
    explorer = Explorer(config, keys, node_id, history)

    async def not_found(request: Request, exc: Exception) -> Response:
        return explorer.error_page(request, 404, "Not found", str(exc))

    async def bad_request(request: Request, exc: Exception) -> Response:
        return explorer.error_page(request, 400, "Bad request", str(exc))

    async def store_unavailable(request: Request, exc: Exception) -> Response:
        return explorer.error_page(request, 503, "Store unavailable", str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        return explorer.error_page(request, exc.status_code, "Error", message)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("explorer error on %s", request.url.path)
        return explorer.error_page(
            request, 500, "Error", f"the explorer failed: {type(exc).__name__}"
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(feed_history(config, history)) if follow_bus else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    routes = [
        Route("/", explorer.network),
        Route("/blocks", explorer.blocks),
        Route("/blocks/{height}", explorer.block),
        Route("/tx/{tx_id}", explorer.transaction),
        Route("/members", explorer.members),
        Route("/members/{member_id}", explorer.member),
        Route("/audit", explorer.audit),
        Route("/audit/rejected.csv", explorer.audit_csv),
        Route("/search", explorer.search),
        Route("/api/network", explorer.network_json),
        Route("/api/events", explorer.events),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            NotFound: not_found,
            BadQuery: bad_request,
            StoreError: store_unavailable,
            HTTPException: http_error,
            Exception: server_error,
        },
    )
    app.state.close_streams = explorer.close_streams
    return app
