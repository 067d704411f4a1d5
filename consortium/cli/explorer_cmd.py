"""`consortium explorer`: the block explorer on 127.0.0.1, over a node's store and the bus."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable
from types import FrameType

import click
import uvicorn

from consortium.cli.common import config_option, load
from consortium.errors import ConfigError
from consortium.explorer.app import create_app
from consortium.explorer.network import NetworkHistory
from consortium.scenarios.ledger_audit import regulator_node

EXPLORER_HOST = "127.0.0.1"
DEFAULT_EXPLORER_PORT = 8080


def explorer_url(port: int = DEFAULT_EXPLORER_PORT) -> str:
    return f"http://{EXPLORER_HOST}:{port}/"


def _check_port(port: int) -> None:
    """Refuse a taken port in one line before the server starts (uvicorn would log and exit)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((EXPLORER_HOST, port))
        except OSError as exc:
            reason = "is in use" if exc.errno == errno.EADDRINUSE else f"fails: {exc.strerror}"
            raise click.ClickException(
                f"port {port} on {EXPLORER_HOST} {reason}: choose another with --port"
            ) from None


@click.command("explorer")
@click.option(
    "--port",
    default=DEFAULT_EXPLORER_PORT,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port on 127.0.0.1.",
)
@click.option(
    "--node",
    "node_id",
    default=None,
    help="The node whose store to read (default: the regulator's).",
)
@config_option
def explorer(port: int, node_id: str | None, config_path: str) -> None:
    """A web UI on 127.0.0.1: the network live, blocks with their certificates checked, the
    consensus of each block, transactions, members, the regulator's audit, search."""
    config, keys = load(config_path)
    if node_id is not None and node_id not in config.node_ids:
        raise ConfigError(
            f"no node {node_id!r} in {config.path} (nodes: {', '.join(config.node_ids)})"
        )
    source = node_id or regulator_node(config)
    _check_port(port)
    history = NetworkHistory(
        {n.id: n.role for n in config.nodes}, wall_offset_s=time.time() - time.monotonic()
    )
    app = create_app(config, keys, source, history)
    click.echo(f"explorer on {explorer_url(port)} (store of {source}); Ctrl-C stops it", err=True)
    settings = uvicorn.Config(
        app, host=EXPLORER_HOST, port=port, log_level="warning", access_log=False
    )
    _Server(settings, app.state.close_streams).run()


class _Server(uvicorn.Server):
    """uvicorn's server, ending the open event streams first when told to stop: it waits for
    every open response before it exits, and an event stream never ends by itself."""

    def __init__(self, config: uvicorn.Config, close_streams: Callable[[], None]) -> None:
        super().__init__(config)
        self.close_streams = close_streams

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.close_streams()
        super().handle_exit(sig, frame)
