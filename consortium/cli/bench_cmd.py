"""`consortium bench ...`: benchmarks that print figures (and plots), never assertions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from consortium.cli.common import ConsortiumGroup, json_option, print_json

if TYPE_CHECKING:
    from consortium.bench.validator import ValidatorResult

PLOT_SIZES = (100, 500, 1000, 2500, 5000, 10000)


@click.group(cls=ConsortiumGroup)
def bench() -> None:
    """Throughput benchmarks."""


@bench.command("validator")
@click.option("--block-txs", default=5000, show_default=True, help="Transactions per block.")
@click.option("--runs", default=5, show_default=True, help="Validations per measurement (median).")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a PNG of tx/s against block size (100 to 10,000).",
)
@json_option
def bench_validator(block_txs: int, runs: int, plot_path: str | None, as_json: bool) -> None:
    """Hot-path block validation against the raw one-core signature-verify rate."""
    from consortium.bench.validator import run_validator_bench
    from consortium.parallel import PoolVerifier

    if not 1 <= block_txs <= 20_000:
        raise click.BadParameter("must be from 1 to 20000", param_hint="--block-txs")
    err = Console(stderr=True)
    pool = PoolVerifier()
    try:
        with err.status(f"validating blocks of {block_txs} transactions..."):
            result = run_validator_bench(block_txs, runs, pool=pool)
        sweep = []
        if plot_path:
            for size in PLOT_SIZES:
                with err.status(f"block size {size}..."):
                    sweep.append(run_validator_bench(size, max(3, runs // 2), pool=pool))
    finally:
        pool.close()
    figures = result.as_json()
    if plot_path:
        _plot(sweep, result, plot_path)
        figures["plot"] = plot_path
        figures["sweep"] = [r.as_json() for r in sweep]
    if as_json:
        print_json(figures)
        return
    table = Table(
        title=f"validator: blocks of {result.block_txs} mixed transactions, {result.signers} signers"
    )
    table.add_column("measure")
    table.add_column("tx/s", justify="right")
    table.add_row("raw PyNaCl verify, 1 core", f"{result.verify_per_s_1core:,.0f}")
    table.add_row(
        f"raw PyNaCl verify, {result.cores} cores (pool, nothing else)",
        f"{result.verify_per_s_all_cores:,.0f}",
    )
    table.add_row(f"cold validation, {result.cores} cores", f"{result.cold_tx_per_s:,.0f}")
    table.add_row("warm validation (signatures cached)", f"{result.warm_tx_per_s:,.0f}")
    table.add_row("cold / raw verify", f"{result.cold_tx_per_s / result.verify_per_s_1core:.2f} x")
    Console().print(table)


def _plot(sweep: list, result: ValidatorResult, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sizes = [r.block_txs for r in sweep]
    ax.plot(sizes, [r.warm_tx_per_s for r in sweep], "o-", label="warm (signatures cached)")
    ax.plot(sizes, [r.cold_tx_per_s for r in sweep], "s-", label=f"cold ({sweep[0].cores} cores)")
    ax.axhline(result.verify_per_s_1core, color="grey", linestyle="--", label="raw verify, 1 core")
    ax.axhline(
        result.verify_per_s_all_cores,
        color="grey",
        linestyle=":",
        label=f"raw verify, {result.cores} cores",
    )
    ax.set_xscale("log")
    ax.set_xlabel("transactions per block")
    ax.set_ylabel("transactions per second")
    ax.set_title("Block validation throughput")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@bench.command("consensus")
@click.option(
    "--nodes",
    default=5,
    show_default=True,
    type=click.IntRange(4, 16),
    help="Nodes in the fresh network.",
)
@click.option(
    "--duration",
    default=30.0,
    show_default=True,
    type=click.FloatRange(1, 600),
    help="Measured seconds (after warm-up).",
)
@click.option(
    "--rate",
    default=2500.0,
    show_default=True,
    type=click.FloatRange(1, 100_000),
    help="Offered load, tx/s (open loop).",
)
@click.option(
    "--window",
    default=None,
    type=click.IntRange(1, 1_000_000),
    help="Closed loop instead: transactions outstanding.",
)
@click.option(
    "--batch",
    "batch_max_txs",
    default=2000,
    show_default=True,
    type=click.IntRange(1, 20_000),
    help="Largest block, in transactions.",
)
@click.option(
    "--generators",
    default=1,
    show_default=True,
    type=click.IntRange(1, 8),
    help="Load generator processes (one offers a few thousand tx/s for about 10 % of a core).",
)
@click.option(
    "--warmup",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 120),
    help="Seconds excluded before measuring.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write PNGs: the latency CDF (FILE) and throughput against offered load (FILE with -load).",
)
@click.option(
    "--sweep", is_flag=True, help="Run nodes x batch size (4, 5, 7 x 500, 2000) and print a table."
)
@click.option(
    "--no-sync",
    "no_sync",
    is_flag=True,
    help="Run the nodes with durable: false (no sync before sends; unsafe under power loss), "
    "to measure what durable votes cost.",
)
@json_option
def bench_consensus(
    nodes: int,
    duration: float,
    rate: float,
    window: int | None,
    batch_max_txs: int,
    generators: int,
    warmup: float,
    plot_path: str | None,
    sweep: bool,
    no_sync: bool,
    as_json: bool,
) -> None:
    """End-to-end committed throughput and latency on a fresh live network."""
    from rich.progress import Progress

    from consortium.bench.consensus import run_consensus_bench

    def run(label: str, **kwargs: object):
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=100)
            return run_consensus_bench(
                progress=lambda done, total: bar.update(task, completed=100 * done / total),
                **kwargs,
            )

    common = {
        "duration_s": duration,
        "generators": generators,
        "warmup_s": warmup,
        "durable": not no_sync,
    }
    if sweep:
        rows = []
        for n in (4, 5, 7):
            for batch in (500, 2000):
                result = run(
                    f"{n} nodes, batch {batch}",
                    nodes=n,
                    batch_max_txs=batch,
                    rate=rate,
                    window=window,
                    **common,
                )
                rows.append(result)
        if as_json:
            print_json({"sweep": [r.as_json() for r in rows]})
            return
        table = Table(title="consensus sweep")
        for column in (
            "nodes",
            "batch",
            "committed tx/s",
            "p50 ms",
            "p99 ms",
            "view changes",
            "efficiency",
        ):
            table.add_column(column, justify="right")
        for r in rows:
            table.add_row(
                str(r.nodes),
                str(r.batch_max_txs),
                f"{r.committed_tx_per_s:,.0f}",
                f"{r.latency_ms['p50']:.0f}",
                f"{r.latency_ms['p99']:.0f}",
                str(r.view_changes),
                f"{r.efficiency:.2f}",
            )
        Console().print(table)
        return
    result = run(
        f"{nodes} nodes",
        nodes=nodes,
        batch_max_txs=batch_max_txs,
        rate=rate,
        window=window,
        **common,
    )
    figures = result.as_json()
    if plot_path:
        loads = sorted({max(1.0, rate * f) for f in (0.25, 0.5, 0.75, 1.0, 1.25)})
        curve = [
            run(
                f"offered {x:.0f} tx/s",
                nodes=nodes,
                batch_max_txs=batch_max_txs,
                rate=x,
                **{**common, "duration_s": max(5.0, duration / 3)},
            )
            for x in loads
        ]
        _plot_consensus(result, curve, plot_path)
        figures["plot"] = [plot_path, _load_plot_path(plot_path)]
        figures["load_curve"] = [
            {"offered": c.offered_tx_per_s, "committed": round(c.committed_tx_per_s)} for c in curve
        ]
    if as_json:
        print_json(figures)
        return
    table = Table(
        title=f"consensus: {result.nodes} nodes, {result.duration_s:g} s, batch {result.batch_max_txs}"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    offered = (
        f"{result.offered_tx_per_s:,.0f} tx/s"
        if result.offered_tx_per_s
        else f"window {result.window}"
    )
    table.add_row("offered", offered)
    table.add_row("committed", f"{result.committed_tx_per_s:,.0f} tx/s")
    for q in ("p50", "p95", "p99"):
        table.add_row(f"latency {q}", f"{result.latency_ms[q]:,.0f} ms")
    table.add_row("view changes", str(result.view_changes))
    table.add_row("bound (cores x verify / nodes)", f"{result.bound_tx_per_s:,.0f} tx/s")
    table.add_row("efficiency", f"{result.efficiency:.2f}")
    for name, pct in result.cpu_percent.items():
        table.add_row(f"cpu {name}", f"{pct:.0f} %")
    Console().print(table)


def _load_plot_path(path: str) -> str:
    stem, dot, ext = path.rpartition(".")
    return f"{stem}-load.{ext}" if dot else f"{path}-load"


def _plot_consensus(result, curve: list, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    latencies = sorted(result.latencies_ms)
    if latencies:
        ax.plot(latencies, [(i + 1) / len(latencies) for i in range(len(latencies))])
    ax.set_xlabel("latency to f+1 matching receipts (ms)")
    ax.set_ylabel("fraction of transactions")
    ax.set_title(
        f"Latency CDF, {result.nodes} nodes, offered {result.offered_tx_per_s or 0:,.0f} tx/s"
    )
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(
        [c.offered_tx_per_s for c in curve],
        [c.committed_tx_per_s for c in curve],
        "o-",
        label="committed",
    )
    top = max(c.offered_tx_per_s for c in curve)
    ax.plot([0, top], [0, top], "--", color="grey", label="offered")
    ax.axhline(result.bound_tx_per_s, color="red", linestyle=":", label="bound")
    ax.set_xlabel("offered load (tx/s)")
    ax.set_ylabel("committed (tx/s)")
    ax.set_title(f"Throughput against offered load, {result.nodes} nodes")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(_load_plot_path(path), dpi=120)
    plt.close(fig)
