"""`consortium audit`: the regulator's report, read from the regulator's own node store."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from consortium.cli.common import config_option, json_option, print_json
from consortium.config import load_config
from consortium.errors import ConfigError
from consortium.ledger.verify import store_errors
from consortium.scenarios.ledger_audit import regulator_audit, regulator_node
from consortium.scenarios.ledger_view import NodeLedger


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            *(escape("" if v is None else f"{v:,}" if type(v) is int else str(v)) for v in row)
        )
    if not rows:
        table.add_row(*(["none"] + [""] * (len(columns) - 1)))
    return table


def render_audit(report: dict[str, Any], console: Console) -> None:
    """The report as tables: exposure, open tokens, overdue tiers, collection, securitisation
    pools, rejections."""
    console.rule(
        f"[bold]regulator's audit[/bold] from node {report['node']} at height "
        f"{report['height']}, business day {report['day']}"
    )
    problems = report["problems"]
    console.print(
        f"money in circulation {report['total_money']:,}; "
        + (
            "[green]no inconsistencies[/green]"
            if not problems
            else f"[bold red]{len(problems)} problems[/bold red]"
        )
    )
    for problem in problems:
        console.print(f"  [red]{escape(problem)}[/red]")
    console.print(
        _table(
            "exposure per bank (open loans)",
            ("bank", "loans", "outstanding", "secured", "unsecured"),
            [
                (bank, e["loans"], e["outstanding"], e["secured"], e["unsecured"])
                for bank, e in sorted(report["exposure"].items())
            ],
        )
    )
    console.print(
        _table(
            "receivables by state",
            ("state", "count", "amount"),
            [
                (state, g["count"], g["amount"])
                for state, g in sorted(report["receivables"]["by_state"].items())
            ],
        )
    )
    console.print(
        _table(
            "loans by state",
            ("state", "count", "principal", "outstanding"),
            [
                (state, g["count"], g["principal"], g["outstanding"])
                for state, g in sorted(report["loans"]["by_state"].items())
            ],
        )
    )
    console.print(
        _table(
            f"open receivables ({len(report['open_receivables'])})",
            ("id", "state", "holder", "debtor", "amount", "due day", "pledgee"),
            [
                (
                    r["id"],
                    r["state"],
                    r["holder"],
                    r["debtor"],
                    r["amount"],
                    r["due_day"],
                    r["pledgee"],
                )
                for r in report["open_receivables"]
            ],
        )
    )
    console.print(
        _table(
            f"open loans ({len(report['open_loans'])})",
            ("id", "bank", "borrower", "state", "outstanding", "days overdue"),
            [
                (r["id"], r["bank"], r["borrower"], r["state"], r["outstanding"], r["days_overdue"])
                for r in report["open_loans"]
            ],
        )
    )
    console.print(
        _table(
            "overdue loans by days past due",
            ("tier", "count", "outstanding"),
            [(tier, t["count"], t["outstanding"]) for tier, t in report["overdue"].items()],
        )
    )
    collection = report["collection"]
    console.print(
        _table(
            "collection tasks",
            ("task", "bank", "state", "agency", "rate bp", "recovered", "commission"),
            [
                (
                    t["task"],
                    t["bank"],
                    t["state"],
                    t["agency"],
                    t["rate_bp"],
                    t["recovered"],
                    t["commission"],
                )
                for t in collection["tasks"]
            ],
        )
    )
    console.print(
        _table(
            "commissions paid",
            ("agency", "commission"),
            sorted(collection["commissions_paid"].items()),
        )
    )
    _render_pools(report, console)
    frozen = ", ".join(report["frozen"]) or "none"
    revoked = ", ".join(f"{m} ({n})" for m, n in sorted(report["revoked_keys"].items())) or "none"
    console.print(f"frozen members: {escape(frozen)}; revoked keys: {escape(revoked)}")
    console.print(
        _table(
            f"rejected transactions ({len(report['rejected_txs'])})",
            ("height", "sender", "operation", "reason"),
            [(t["height"], t["sender"], t["op"], t["reason"]) for t in report["rejected_txs"]],
        )
    )


def _render_pools(report: dict[str, Any], console: Console) -> None:
    """Securitisation: each pool, its tranches with ratings, its last servicing report, and who
    holds which units."""
    pools = report.get("pools", [])
    console.print(
        _table(
            f"securitisation pools ({len(pools)})",
            (
                "pool",
                "bank",
                "state",
                "loans",
                "outstanding principal",
                "account",
                "losses",
                "distributions",
                "rated by",
            ),
            [
                (
                    p["pool"],
                    p["bank"],
                    p["state"],
                    p["loans"],
                    p["outstanding_principal"],
                    p["collection_account"],
                    p["losses"],
                    p["distributions"],
                    ", ".join(p["rated_by"]) or "none",
                )
                for p in pools
            ],
        )
    )
    for p in pools:
        console.print(
            _table(
                f"tranches of {p['pool']} (senior first)",
                (
                    "tranche",
                    "size",
                    "units",
                    "cancelled",
                    "coupon bp",
                    "outstanding",
                    "principal paid",
                    "interest paid",
                    "losses",
                    "ratings",
                ),
                [
                    (
                        t["name"],
                        t["size"],
                        t["units"],
                        t["cancelled"],
                        t["coupon_bp"],
                        t["outstanding"],
                        t["principal_paid"],
                        t["interest_paid"],
                        t["losses"],
                        ", ".join(f"{a} {g}" for a, g in t["ratings"].items()) or "none",
                    )
                    for t in p["tranches"]
                ],
            )
        )
        last = p["last_report"]
        if last is None:
            continue
        console.print(
            f"last servicing report of {escape(p['pool'])}: no. {last['number']}, day "
            f"{last['day']}: collected {last['collected']:,}, paid {last['paid']:,}, loss "
            f"{last['loss']:,}, carried {last['carried']:,}"
            + (", the last distribution" if last["final"] else "")
        )
        console.print(
            _table(
                "",
                (
                    "tranche",
                    "interest",
                    "principal",
                    "won back",
                    "residual",
                    "loss absorbed",
                    "outstanding",
                ),
                [
                    (
                        t["name"],
                        t["interest"],
                        t["principal"],
                        t["reinstated"],
                        t["residual"],
                        t["absorbed"],
                        t["outstanding"],
                    )
                    for t in last["tranches"]
                ],
            )
        )
    console.print(
        _table(
            "investors' holdings",
            ("investor", "pool", "tranche", "units"),
            [
                (investor, h["pool"], h["tranche"], h["units"])
                for investor, held in report.get("holdings", {}).items()
                for h in held
            ],
        )
    )


def read_audit(config_path: str, node: str | None) -> dict[str, Any]:
    config = load_config(config_path)
    if node is not None and node not in config.node_ids:
        raise ConfigError(f"no node {node!r} in {config.path}")
    ledger = NodeLedger(config, node or regulator_node(config))
    try:
        with store_errors(ledger.path):
            return regulator_audit(ledger, config)
    finally:
        ledger.close()


@click.command("audit")
@click.option("--node", default=None, help="Read this node's store instead of the regulator's.")
@config_option
@json_option
def audit(node: str | None, config_path: str, as_json: bool) -> None:
    """The regulator's report: exposure, open tokens, overdue tiers, collection, pools,
    rejections."""
    report = read_audit(config_path, node)
    if as_json:
        print_json(report)
    else:
        render_audit(report, Console())
