"""`consortium fuzz`: hostile input from a compromised node's and a client's broker logins."""

from __future__ import annotations

import asyncio
import secrets

import click

from consortium.cli.checked_run import broker_per_node_option, err, run_checked
from consortium.cli.common import config_option, json_option
from consortium.config import NetworkConfig
from consortium.fuzz.runner import FuzzReport, FuzzSettings, run_fuzz
from consortium.keys import KeyDirectory


def _run(config: NetworkConfig, keys: KeyDirectory, settings: FuzzSettings) -> FuzzReport:
    return asyncio.run(run_fuzz(config, keys, settings, progress=lambda m: err.print(m)))


def _summary(report: FuzzReport) -> str:
    before = sum(v or 0 for v in report.rss_before_kib.values()) // 1024
    after = sum(v or 0 for v in report.rss_after_kib.values()) // 1024
    return (
        f"seed {report.seed}: sent {sum(report.sent.values())} hostile messages as {report.victim},"
        f" nodes rejected {sum(report.rejected.values())}; {report.committed_during} acknowledged"
        f" while fuzzing; {report.rule_breakers_failed} rule breakers failed as they should;"
        f" node memory {before} MiB -> {after} MiB"
        + (f"; {report.victim}'s broker killed and restarted" if report.broker_outages else "")
    )


@click.command()
@click.option(
    "--duration",
    "duration_s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(2, 3600),
    help="Seconds of hostile input.",
)
@click.option("--seed", default=None, type=click.IntRange(0, 2**63 - 1), help="Replay this seed.")
@click.option("--victim", default=None, help="The compromised node (default: the primary).")
@click.option(
    "--rate",
    default=150.0,
    show_default=True,
    type=click.FloatRange(1, 10_000),
    help="Hostile consensus messages per second.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Run against a new network of its own on a free port (ignores --config).",
)
@click.option(
    "--light", is_flag=True, help="Leave out the megabyte arrays that take long to decode."
)
@broker_per_node_option
@json_option
@config_option
def fuzz(
    duration_s: float,
    seed: int | None,
    victim: str | None,
    rate: float,
    fresh: bool,
    light: bool,
    broker_per_node: bool,
    as_json: bool,
    config_path: str,
) -> None:
    """Publish garbage, truncated and oversized msgpack, forged, replayed and wrongly signed
    consensus messages, wrong views and sequences, a digest that does not match its block, an
    enormous view change, and forged, replayed and rule-breaking transactions, while a workload
    keeps committing. Exits 1 unless the network kept committing, counted the rejects, gave the
    rule breakers failed receipts and changed no other state."""
    chosen = seed if seed is not None else secrets.randbelow(2**31)
    settings = FuzzSettings(
        duration_s=duration_s, seed=chosen, victim=victim, consensus_rate=rate, heavy=not light
    )
    run_checked(
        "fuzz",
        fresh,
        config_path,
        lambda config, keys: _run(config, keys, settings),
        _summary,
        as_json,
        broker_per_node,
    )
