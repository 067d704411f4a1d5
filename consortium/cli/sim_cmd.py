"""`consortium sim`: deterministic simulation of the whole node (or of the PBFT core over a
stand-in application) under seeded network, disk and byzantine faults."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass

import click

from consortium.cli.common import print_json
from consortium.roles import max_faulty
from consortium.sim.cost import PHASES, normal_case_messages, normal_case_total
from consortium.sim.runner import RunResult, SimSettings
from consortium.sim.sweep import SweepReport, sweep
from consortium.sim.whole import NODE_CONSENSUS

MIN_NODES = 4
MAX_NODES = 100
PLOT_SIZES = {"all": "4,7,10,13", "none": "4,7,10,16,25,40,70,100"}


@dataclass(frozen=True, slots=True)
class CostPoint:
    """One network size's cost per committed block, over the seeds run at that size."""

    nodes: int
    messages: float
    pbft_messages: float  # the paper's phases and checkpoints only
    paper_messages: float
    kib: float
    wall_ms: float


def _plot(path: str, points: list[CostPoint], faults: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = [p.nodes for p in points]
    fig, (messages, kib, wall) = plt.subplots(3, 1, figsize=(7, 9), sharex=True)
    messages.plot(nodes, [p.messages for p in points], "o-", label="measured, every message")
    messages.plot(nodes, [p.pbft_messages for p in points], "s-", label="measured, PBFT phases")
    messages.plot(
        nodes, [p.paper_messages for p in points], "k--", label="paper: 2n(n-1) + n(n-1)/K"
    )
    messages.set_ylabel("messages per block")
    messages.set_yscale("log")
    messages.legend()
    kib.plot(nodes, [p.kib for p in points], "o-", color="tab:red")
    kib.set_ylabel("KiB per block")
    kib.set_yscale("log")
    wall.plot(nodes, [p.wall_ms for p in points], "o-", color="tab:green")
    wall.set_ylabel("wall ms per block")
    wall.set_xlabel("nodes (n)")
    kind = "with faults" if faults else "fault-free"
    messages.set_title(f"PBFT cost per committed block (whole-node simulation, {kind})")
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
    help="PNG of messages (measured and the paper's), bytes and wall time per block against n.",
)
@click.option(
    "--plot-nodes",
    "plot_nodes",
    default=None,
    help="Sizes to plot, one seed each besides this run's (default 4,7,10,13, or 4 to 100 "
    "with --faults none).",
)
@click.option(
    "--byzantine/--no-byzantine", default=True, show_default=True, help="Up to f byzantine nodes."
)
@click.option(
    "--faults",
    type=click.Choice(["all", "none"]),
    default="all",
    show_default=True,
    help="none: no network, disk or byzantine fault, to compare the messages per block with "
    "the PBFT paper's normal case (reported as paper_messages_per_block).",
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
    plot_nodes: str | None,
    byzantine: bool,
    faults: str,
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
    settings = SimSettings(nodes=nodes, byzantine=byzantine, app=app, faults=faults == "all")
    if app == "node":
        settings = dataclasses.replace(settings, consensus=NODE_CONSENSUS)
    sizes = _sizes(plot_nodes or PLOT_SIZES[faults]) if plot_path is not None else []
    seeds = [one_seed] if one_seed is not None else list(range(seed_count))
    started = time.monotonic()
    report = _run(seeds, settings, as_json)
    elapsed = time.monotonic() - started
    summary = report.summary()
    summary["wall_seconds"] = round(elapsed, 2)
    summary["max_faulty"] = max_faulty(nodes)
    if one_seed is not None:
        summary["trace_hash"] = report.trace_hashes[one_seed]
    if not settings.faults:
        interval = settings.consensus.checkpoint_interval
        summary["paper_messages_per_block"] = normal_case_messages(nodes, interval)
    summary["seeds_per_second"] = round(len(seeds) / max(elapsed, 1e-9), 2)
    if plot_path is not None:
        points = _plot_points(nodes, settings, report, elapsed, sizes)
        _plot(plot_path, points, settings.faults)
        summary["plot"] = plot_path
        summary["plot_points"] = [dataclasses.asdict(p) for p in points]
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
    nodes: int, settings: SimSettings, report: SweepReport, wall_s: float, sizes: list[int]
) -> list[CostPoint]:
    """This run's n, plus one seed at each other size asked for."""
    points = {nodes: _cost(report, settings, wall_s)}
    for n in sizes:
        if n not in points:
            sized = dataclasses.replace(settings, nodes=n)
            started = time.monotonic()
            extra = sweep(range(1), sized, workers=1)
            points[n] = _cost(extra, sized, time.monotonic() - started)
    return [points[n] for n in sorted(points)]


def _cost(report: SweepReport, settings: SimSettings, wall_s: float) -> CostPoint:
    blocks = max(report.blocks, 1)
    pbft = sum(report.messages_by_kind.get(kind, 0) for kind in PHASES)
    return CostPoint(
        nodes=settings.nodes,
        messages=report.messages / blocks,
        pbft_messages=pbft / blocks,
        paper_messages=normal_case_total(settings.nodes, settings.consensus.checkpoint_interval),
        kib=report.bytes / blocks / 1024,
        wall_ms=1000 * wall_s / blocks,
    )


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise click.ClickException(
            f"--plot-nodes: expected sizes such as 4,7,10, got {text!r}"
        ) from None
    if not sizes or not all(MIN_NODES <= n <= MAX_NODES for n in sizes):
        raise click.ClickException(
            f"--plot-nodes: sizes must be between {MIN_NODES} and {MAX_NODES}, got {text!r}"
        )
    return sizes


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
