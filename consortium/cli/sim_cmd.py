"""`consortium sim`: deterministic simulation of the whole node (or of the PBFT core over a
stand-in application) under seeded network, disk and byzantine faults."""

from __future__ import annotations

import dataclasses
import sys
import time

import click

from consortium.cli.common import print_json
from consortium.roles import max_faulty
from consortium.sim.runner import RunResult, SimSettings
from consortium.sim.sweep import SweepReport, sweep
from consortium.sim.whole import NODE_CONSENSUS

MIN_NODES = 4
MAX_NODES = 100
REFERENCE_SIZES = (4, 7, 10, 13)


def _plot(path: str, points: list[tuple[int, float, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = [p[0] for p in points]
    fig, left = plt.subplots(figsize=(6, 4))
    left.plot(nodes, [p[1] for p in points], "o-", color="tab:blue", label="messages per block")
    left.set_xlabel("nodes (n)")
    left.set_ylabel("messages per committed block", color="tab:blue")
    right = left.twinx()
    right.plot(nodes, [p[2] / 1024 for p in points], "s--", color="tab:red", label="KiB per block")
    right.set_ylabel("KiB per committed block", color="tab:red")
    left.set_title("PBFT cost per committed block (simulated, with faults)")
    fig.tight_layout()
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)


def _describe_failure(result: RunResult) -> str:
    what = result.safety_violations[0] if result.safety_violations else result.liveness_failure
    what = what or (result.business_invariant_violations or ["?"])[0]
    return (
        f"seed {result.seed} failed (replay: consortium sim --app {result.app} --nodes "
        f"{result.nodes} --seed {result.seed}): {what}"
    )


@click.command()
@click.option("--nodes", "nodes", default=5, show_default=True, type=int, help="Replicas (n >= 4).")
@click.option(
    "--seeds", "seed_count", default=100, show_default=True, type=int, help="Runs, seeds 0..K-1."
)
@click.option("--seed", "one_seed", default=None, type=int, help="Replay exactly this seed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option(
    "--plot",
    "plot_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="PNG of messages and bytes per block against n.",
)
@click.option(
    "--byzantine/--no-byzantine", default=True, show_default=True, help="Up to f byzantine nodes."
)
@click.option(
    "--app",
    type=click.Choice(["node", "model"]),
    default="node",
    show_default=True,
    help="node: the whole node over the real ledger, contracts and store; model: the replicas "
    "over a small stand-in application (faster).",
)
def sim(
    nodes: int,
    seed_count: int,
    one_seed: int | None,
    as_json: bool,
    plot_path: str | None,
    byzantine: bool,
    app: str,
) -> None:
    """Run PBFT on a seeded virtual network: faults first, then heal and demand convergence."""
    if not MIN_NODES <= nodes <= MAX_NODES:
        raise click.ClickException(
            f"--nodes must be between {MIN_NODES} and {MAX_NODES}, got {nodes}"
        )
    if one_seed is None and seed_count < 1:
        raise click.ClickException(f"--seeds must be at least 1, got {seed_count}")
    if one_seed is not None and one_seed < 0:
        raise click.ClickException(f"--seed must not be negative, got {one_seed}")
    settings = SimSettings(nodes=nodes, byzantine=byzantine, app=app)
    if app == "node":
        settings = dataclasses.replace(settings, consensus=NODE_CONSENSUS)
    seeds = [one_seed] if one_seed is not None else list(range(seed_count))
    started = time.monotonic()
    report = _run(seeds, settings, as_json)
    elapsed = time.monotonic() - started
    summary = report.summary()
    summary["wall_seconds"] = round(elapsed, 2)
    summary["max_faulty"] = max_faulty(nodes)
    if one_seed is not None:
        summary["trace_hash"] = report.trace_hashes[one_seed]
    if plot_path is not None:
        points = _plot_points(nodes, settings, report)
        _plot(plot_path, points)
        summary["plot"] = plot_path
    for failure in report.failures:
        click.echo(_describe_failure(failure), err=True)
    if as_json:
        print_json(summary)
    else:
        _print_table(summary)
    if report.failures:
        sys.exit(1)


def _run(seeds: list[int], settings: SimSettings, as_json: bool) -> SweepReport:
    if as_json or len(seeds) == 1:
        return sweep(seeds, settings, workers=1 if len(seeds) == 1 else None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]sim n={task.fields[nodes]}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} seeds, {task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    failed = 0
    with progress:
        task = progress.add_task("sim", total=len(seeds), nodes=settings.nodes, failed=0)

        def advance(result: RunResult) -> None:
            nonlocal failed
            failed += not result.ok
            progress.update(task, advance=1, failed=failed)

        return sweep(seeds, settings, on_result=advance)


def _plot_points(
    nodes: int, settings: SimSettings, report: SweepReport
) -> list[tuple[int, float, float]]:
    """This run's n plus a few small fault-free-of-byzantine reference sizes."""
    points = {nodes: _per_block(report)}
    for n in REFERENCE_SIZES:
        if n not in points:
            extra = sweep(range(2), dataclasses.replace(settings, nodes=n))
            points[n] = _per_block(extra)
    return sorted((n, m, b) for n, (m, b) in points.items())


def _per_block(report: SweepReport) -> tuple[float, float]:
    blocks = max(report.blocks, 1)
    return report.messages / blocks, report.bytes / blocks


def _print_table(summary: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"consortium sim, n={summary['nodes']}", show_header=False)
    for key in (
        "runs",
        "safety_violations",
        "liveness_failures",
        "failing_seeds",
        "app",
        "committed_blocks",
        "committed_txs",
        "business_invariant_violations",
        "disk_faults",
        "messages_per_block",
        "bytes_per_block",
        "latency_virtual_ms",
        "view_changes",
        "faults",
        "byzantine",
        "wall_seconds",
        "trace_hash",
    ):
        if key in summary:
            table.add_row(key, str(summary[key]))
    Console(stderr=True).print(table)
