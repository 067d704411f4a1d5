"""`consortium bench ...`: benchmarks that print figures (and plots), never assertions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from consortium.cli.common import ConsortiumGroup, json_option, print_json

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes

    from consortium.bench.consensus import ProcessSample
    from consortium.bench.soak import SoakResult
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
    table.add_row(
        "cold / warm with the whole state in memory",
        f"{result.cold_tx_per_s_state_in_memory:,.0f} / {result.warm_tx_per_s_state_in_memory:,.0f}",
    )
    table.add_row("cold / raw verify", f"{result.cold_tx_per_s / result.verify_per_s_1core:.2f} x")
    table.add_row(
        f"ceiling: all cores' verify / {result.signatures_per_tx:.2f} signatures per tx",
        f"{result.ceiling_tx_per_s:,.0f}",
    )
    table.add_row("cold / ceiling", f"{result.cold_tx_per_s / result.ceiling_tx_per_s:.2f} x")
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
    help="Also write PNGs: the latency CDF (FILE), throughput against offered load (FILE with "
    "-load) and each node's resident memory over the measurement (FILE with -rss).",
)
@click.option(
    "--sample-s",
    "sample_s",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.5, 600),
    help="Seconds between resident-memory samples of every process.",
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
@click.option(
    "--brokers",
    "topology",
    type=click.Choice(["shared", "per_node", "both"]),
    default="shared",
    show_default=True,
    help="One shared broker, one per organisation (bridged, TLS), or both one after the other"
    " under the same load, side by side.",
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
    sample_s: float,
    topology: str,
    as_json: bool,
) -> None:
    """End-to-end committed throughput and latency on a fresh live network, and the resident
    memory of every process while it runs."""
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
        "sample_s": sample_s,
        "broker_per_node": topology == "per_node",
    }
    if topology == "both":
        if sweep or plot_path:
            raise click.UsageError("--brokers both compares one run of each; no --sweep, --plot")
        both = {
            name: run(
                f"{nodes} nodes, {name} brokers",
                nodes=nodes,
                batch_max_txs=batch_max_txs,
                rate=rate,
                window=window,
                **{**common, "broker_per_node": name == "per_node"},
            )
            for name in ("shared", "per_node")
        }
        _print_topologies(both, as_json)
        return
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
        _plot_rss(result.samples, result.node_ids, _suffixed_path(plot_path, "rss"))
        figures["plot"] = [
            plot_path,
            _suffixed_path(plot_path, "load"),
            _suffixed_path(plot_path, "rss"),
        ]
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
    for node_id in result.node_ids:
        table.add_row(
            f"rss {node_id}: max, growth",
            _rss_cell(figures["rss_mb"][node_id], figures["rss_growth_bytes_per_tx"][node_id]),
        )
    Console().print(table)


def _print_topologies(results: dict[str, Any], as_json: bool) -> None:
    """The same load on one shared broker and on bridged brokers per organisation."""
    shared, bridged = results["shared"], results["per_node"]
    ratio = (
        bridged.committed_tx_per_s / shared.committed_tx_per_s
        if shared.committed_tx_per_s
        else None
    )
    if as_json:
        print_json(
            {
                "shared": shared.as_json(),
                "per_node": bridged.as_json(),
                "per_node_vs_shared": None if ratio is None else round(ratio, 3),
            }
        )
        return
    table = Table(title=f"consensus: {shared.nodes} nodes, one broker against one per organisation")
    for column in ("measure", "shared broker", "broker per organisation"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    table.add_row("committed", *(f"{r.committed_tx_per_s:,.0f} tx/s" for r in (shared, bridged)))
    for q in ("p50", "p95", "p99"):
        table.add_row(f"latency {q}", *(f"{r.latency_ms[q]:,.0f} ms" for r in (shared, bridged)))
    table.add_row("view changes", *(str(r.view_changes) for r in (shared, bridged)))
    brokers = [
        sum(pct for name, pct in r.cpu_percent.items() if name.startswith("mosquitto"))
        for r in (shared, bridged)
    ]
    table.add_row("cpu of the brokers", *(f"{pct:.0f} %" for pct in brokers))
    Console().print(table)


def _rss_cell(series_mb: list[float | None], growth: float | None) -> str:
    """`123.4 MB, +56 B/tx`: the largest sample and the slope against committed transactions."""
    known = [v for v in series_mb if v is not None]
    top = f"{max(known):,.1f} MB" if known else "-"
    return f"{top}, {'-' if growth is None else f'{growth:+,.0f} B/tx'}"


def _suffixed_path(path: str, suffix: str) -> str:
    """`plot.png` -> `plot-SUFFIX.png`: the companion figures of one --plot FILE."""
    stem, dot, ext = path.rpartition(".")
    return f"{stem}-{suffix}.{ext}" if dot else f"{path}-{suffix}"


def _plot_rss(samples: Sequence[ProcessSample], node_ids: Sequence[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    _draw_rss(ax, samples, node_ids)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _draw_rss(ax: Axes, samples: Sequence[ProcessSample], node_ids: Sequence[str]) -> None:
    from consortium.bench.consensus import rss_series_mb

    at_s = [s.at_s for s in samples]
    for node_id in node_ids:
        series = rss_series_mb(samples, node_id)
        ax.plot(at_s, [float("nan") if v is None else v for v in series], label=node_id)
    ax.set_xlabel("seconds since the measurement started")
    ax.set_ylabel("resident memory (MB)")
    ax.set_title("Node resident memory")
    ax.legend()
    ax.grid(True, alpha=0.3)


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
    fig.savefig(_suffixed_path(path, "load"), dpi=120)
    plt.close(fig)


@bench.command("soak")
@click.option(
    "--rate",
    default=1500.0,
    show_default=True,
    type=click.FloatRange(1, 100_000),
    help="Offered load, tx/s (open loop), for the whole run.",
)
@click.option(
    "--duration",
    default=1800.0,
    show_default=True,
    type=click.FloatRange(10, 86_400),
    help="Measured seconds (after warm-up).",
)
@click.option(
    "--window-s",
    "window_s",
    default=600.0,
    show_default=True,
    type=click.FloatRange(5, 86_400),
    help="Seconds per reported window (the last may be shorter).",
)
@click.option(
    "--sample-s",
    "sample_s",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.5, 600),
    help="Seconds between resident-memory samples of every process.",
)
@click.option(
    "--generators",
    default=1,
    show_default=True,
    type=click.IntRange(1, 7),
    help="Load generator processes (one more offers the small load while a node restarts).",
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
    "--warmup",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 120),
    help="Seconds excluded before measuring.",
)
@click.option(
    "--restart-timeout",
    "restart_timeout_s",
    default=120.0,
    show_default=True,
    type=click.FloatRange(5, 3600),
    help="Longest wait for the restarted node to catch up.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a PNG: each node's resident memory over time, and p99 latency per window.",
)
@json_option
def bench_soak(
    rate: float,
    duration: float,
    window_s: float,
    sample_s: float,
    generators: int,
    batch_max_txs: int,
    warmup: float,
    restart_timeout_s: float,
    plot_path: str | None,
    as_json: bool,
) -> None:
    """A steady load on a fresh 5-node durable network for a long time: per window throughput,
    latency, view changes and memory growth per committed transaction, then a backup killed
    and restarted from its disk under a small load, timed until it is back in consensus."""
    from rich.progress import Progress

    from consortium.bench.soak import run_soak

    if window_s > duration:
        raise click.BadParameter("must not exceed --duration", param_hint="--window-s")
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"soak at {rate:,.0f} tx/s", total=100)
        result = run_soak(
            rate=rate,
            duration_s=duration,
            window_s=window_s,
            generators=generators,
            batch_max_txs=batch_max_txs,
            warmup_s=warmup,
            sample_s=sample_s,
            restart_timeout_s=restart_timeout_s,
            progress=lambda done, total: bar.update(task, completed=100 * done / total),
        )
    figures = result.as_json()
    if plot_path:
        _plot_soak(result, plot_path)
        figures["plot"] = plot_path
    if as_json:
        print_json(figures)
        return
    _print_soak(result, figures)


def _cell(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def _print_soak(result: SoakResult, figures: dict[str, Any]) -> None:
    console = Console()
    windows = Table(
        title=f"soak: {result.nodes} nodes, {result.offered_tx_per_s:,.0f} tx/s offered for "
        f"{result.duration_s:g} s, windows of {result.window_s:g} s"
    )
    for column in ("window", "committed tx/s", "p50 ms", "p99 ms", "view changes/min"):
        windows.add_column(column, justify="right")
    for node_id in result.node_ids:
        windows.add_column(f"{node_id} MB, B/tx", justify="right")
    for w in result.windows:
        windows.add_row(
            f"{w.start_s:g}-{w.end_s:g} s",
            _cell(w.committed_tx_per_s, ",.0f"),
            _cell(w.latency_ms["p50"], ",.0f"),
            _cell(w.latency_ms["p99"], ",.0f"),
            _cell(w.view_changes_per_min, ".2f"),
            *(
                f"{_cell(w.rss_mb_end[n], ',.1f')}, {_cell(w.rss_growth_bytes_per_tx[n], '+,.0f')}"
                for n in result.node_ids
            ),
        )
    console.print(windows)
    summary = Table(title="soak: the whole run and the restart")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    summary.add_row("committed / sent", _cell(figures["committed_fraction"], ".4f"))
    summary.add_row("p99 last / first window", _cell(figures["p99_ratio_last_first"], ".2f"))
    summary.add_row(
        "view changes/min last / first window",
        _cell(figures["view_changes_per_min_ratio_last_first"], ".2f"),
    )
    summary.add_row(
        "presigned before the clock", f"{result.presigned_txs:,} in {result.presign_s:.1f} s"
    )
    for node_id in result.node_ids:
        summary.add_row(
            f"rss {node_id}: max, growth",
            _rss_cell(figures["rss_mb"][node_id], figures["rss_growth_bytes_per_tx"][node_id]),
        )
    restart = result.restart
    summary.add_row(
        f"restart of {restart.node} (primary {restart.primary or '-'})",
        f"back in {restart.restart_s:.1f} s at height {restart.height:,}"
        if restart.restart_s is not None and restart.height is not None
        else f"not back within {restart.timeout_s:g} s",
    )
    summary.add_row("restarted node's committed txs", _cell(restart.committed_txs, ","))
    console.print(summary)


def _plot_soak(result: SoakResult, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (memory, latency) = plt.subplots(2, 1, figsize=(8, 8))
    _draw_rss(memory, result.samples, result.node_ids)
    p99 = [w.latency_ms["p99"] for w in result.windows]
    latency.bar(
        [(w.start_s + w.end_s) / 2 for w in result.windows],
        [float("nan") if v is None else v for v in p99],
        width=[0.9 * (w.end_s - w.start_s) for w in result.windows],
    )
    latency.set_xlabel("seconds since the measurement started")
    latency.set_ylabel("p99 latency (ms)")
    latency.set_title(f"p99 latency per window, {result.offered_tx_per_s:,.0f} tx/s offered")
    latency.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@bench.command("restart")
@click.option(
    "--txs",
    default=2_000_000,
    show_default=True,
    type=click.IntRange(0, 20_000_000),
    help="Committed transactions every node holds before the restart.",
)
@click.option(
    "--batch",
    "batch_max_txs",
    default=2000,
    show_default=True,
    type=click.IntRange(1, 20_000),
    help="Transactions per block of the history (and the network's largest block).",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=120.0,
    show_default=True,
    type=click.FloatRange(5, 3600),
    help="Longest wait for the restarted node to catch up.",
)
@json_option
def bench_restart(txs: int, batch_max_txs: int, timeout_s: float, as_json: bool) -> None:
    """A node with a long chain back in consensus: every store given TXS committed
    transactions, the network started on them, then a backup killed and restarted from its disk
    under a small load, timed until it has caught up and votes with the others."""
    from rich.progress import Progress

    from consortium.bench.restart import run_restart_bench

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"history of {txs:,} transactions", total=max(1, txs))
        result = run_restart_bench(
            txs=txs,
            block_txs=batch_max_txs,
            timeout_s=timeout_s,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    figures = result.as_json()
    if as_json:
        print_json(figures)
        return
    table = Table(title=f"restart of a node holding {result.history.txs:,} transactions")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("history", f"{result.history.height:,} blocks, {result.history.store_mb:,.0f} MB")
    table.add_row("history built in", f"{result.history.build_s:,.1f} s")
    table.add_row("network started on it in", f"{result.network_start_s:.2f} s")
    restart = result.restart
    table.add_row(
        f"restart of {restart.node}",
        f"back in {restart.restart_s:.2f} s at height {restart.height:,}"
        if restart.restart_s is not None and restart.height is not None
        else f"not back within {restart.timeout_s:g} s",
    )
    Console().print(table)
