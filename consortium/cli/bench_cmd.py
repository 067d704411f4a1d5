"""`consortium bench ...`: benchmarks that print figures (and plots), never assertions."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from consortium.cli.common import ConsortiumGroup, json_option, print_json

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
        _plot(sweep, result.verify_per_s_1core, plot_path)
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
    table.add_row(f"cold validation, {result.cores} cores", f"{result.cold_tx_per_s:,.0f}")
    table.add_row("warm validation (signatures cached)", f"{result.warm_tx_per_s:,.0f}")
    table.add_row("cold / raw verify", f"{result.cold_tx_per_s / result.verify_per_s_1core:.2f} x")
    Console().print(table)


def _plot(sweep: list, verify_rate: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sizes = [r.block_txs for r in sweep]
    ax.plot(sizes, [r.warm_tx_per_s for r in sweep], "o-", label="warm (signatures cached)")
    ax.plot(sizes, [r.cold_tx_per_s for r in sweep], "s-", label=f"cold ({sweep[0].cores} cores)")
    ax.axhline(verify_rate, color="grey", linestyle="--", label="raw verify, 1 core")
    ax.set_xscale("log")
    ax.set_xlabel("transactions per block")
    ax.set_ylabel("transactions per second")
    ax.set_title("Block validation throughput")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
