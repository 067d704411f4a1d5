"""Hosts for live tests: Linux network namespaces on one bridge, each with its own address.

`hosts(count)` makes `count` namespaces, each with a veth pair whose outer end is a port of a new
Linux bridge in the root namespace, and gives the root namespace an address on that bridge too
(the test's clients run there). Every name carries this process's pid and a random tag, so
parallel or leftover runs never clash, and the subnet is a 10.x.y.0/24 that nothing on this
machine uses yet. Whatever happens, the context manager ends every process still running in the
namespaces (only ours run there), then removes the veths, the namespaces and the bridge.

`set_link(host, up=False)` takes the host's own interface down: its processes still reach each
other on its address, nobody else reaches them, and they reach nobody: a cable pulled.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

IP = "ip"
INNER_INTERFACE = "eth0"
_COMMAND_TIMEOUT_S = 10.0


class NamespaceError(Exception):
    """An `ip` command failed while building or changing the hosts."""


@dataclass(frozen=True, slots=True)
class Host:
    namespace: str
    address: str
    outer_interface: str
    """The veth end attached to the bridge, in the root namespace."""

    def command(self, *args: str) -> list[str]:
        """`args` run inside this host's namespace."""
        return [IP, "netns", "exec", self.namespace, *args]


@dataclass(frozen=True, slots=True)
class Hosts:
    bridge: str
    subnet: ipaddress.IPv4Network
    root_address: str
    hosts: tuple[Host, ...]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [IP, *args], capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S, check=False
    )
    if check and done.returncode != 0:
        raise NamespaceError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which(IP) is None:
        return "no `ip` command (iproute2)"
    probe = f"cprobe{os.getpid()}{secrets.token_hex(2)}"
    try:
        added = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns add` failed: {exc}"
    if added.returncode != 0:
        return f"`ip netns add` failed: {added.stderr.strip() or added.returncode}"
    _ip("netns", "del", probe, check=False)
    return None


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the root namespace has an address or a route in."""
    used = []
    for args in (("-4", "-o", "addr", "show"), ("-4", "route", "show", "table", "all")):
        for line in _ip(*args).stdout.splitlines():
            for word in line.split():
                with contextlib.suppress(ValueError):
                    if word[0].isdigit():
                        used.append(ipaddress.ip_network(word, strict=False))
    return used


def _free_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    start = os.getpid() + secrets.randbelow(1 << 16)
    for step in range(100 * 256):
        n = (start + step) % (100 * 256)
        candidate = ipaddress.IPv4Network(f"10.{100 + n // 256}.{n % 256}.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise NamespaceError("no free 10.x.y.0/24 subnet for the hosts")


def namespace_pids(namespace: str) -> list[int]:
    done = _ip("netns", "pids", namespace, check=False)
    return [int(word) for word in done.stdout.split() if word.isdigit()]


def _end_processes(namespaces: Sequence[str], timeout_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, every process still running inside `namespaces`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [pid for ns in namespaces for pid in namespace_pids(ns)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while pids and time.monotonic() < deadline:
            pids = [pid for ns in namespaces for pid in namespace_pids(ns)]
            time.sleep(0.05)
        if not pids:
            return


@contextlib.contextmanager
def hosts(count: int) -> Iterator[Hosts]:
    """`count` hosts on one bridge; everything is removed afterwards, whatever happened."""
    tag = f"{os.getpid() % 100_000}{secrets.token_hex(2)}"
    bridge = f"cb{tag}"
    created_namespaces: list[str] = []
    created_links: list[str] = []
    bridge_made = False
    try:
        subnet = _free_subnet()
        addresses = list(subnet.hosts())
        root_address = str(addresses[-1])
        _ip("link", "add", bridge, "type", "bridge")
        bridge_made = True
        _ip("addr", "add", f"{root_address}/{subnet.prefixlen}", "dev", bridge)
        _ip("link", "set", bridge, "up")
        made = []
        for index in range(count):
            namespace, outer = f"cn{tag}-{index}", f"cv{tag}{index}"
            _ip("netns", "add", namespace)
            created_namespaces.append(namespace)
            _ip(
                "link", "add", outer, "type", "veth",
                "peer", "name", INNER_INTERFACE, "netns", namespace,
            )  # fmt: skip
            created_links.append(outer)
            _ip("link", "set", outer, "master", bridge)
            _ip("link", "set", outer, "up")
            address = str(addresses[index])
            _ip("-n", namespace, "addr", "add", f"{address}/{subnet.prefixlen}",
                "dev", INNER_INTERFACE)  # fmt: skip
            _ip("-n", namespace, "link", "set", INNER_INTERFACE, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            made.append(Host(namespace, address, outer))
        yield Hosts(bridge, subnet, root_address, tuple(made))
    finally:
        _end_processes(created_namespaces)
        for link in created_links:
            _ip("link", "del", link, check=False)
        for namespace in created_namespaces:
            _ip("netns", "del", namespace, check=False)
        if bridge_made:
            _ip("link", "del", bridge, check=False)


def set_link(host: Host, *, up: bool) -> None:
    """Take the host's interface down (cut off from everyone) or bring it back up."""
    _ip("-n", host.namespace, "link", "set", INNER_INTERFACE, "up" if up else "down")


def leftovers(made: Hosts) -> list[str]:
    """What of `made` still exists: namespaces and links (empty once `hosts` has cleaned up)."""
    names = set(_ip("netns", "list").stdout.split())
    links = _ip("-o", "link", "show").stdout
    found = [h.namespace for h in made.hosts if h.namespace in names]
    found += [h.outer_interface for h in made.hosts if f" {h.outer_interface}@" in links]
    if f" {made.bridge}:" in links:
        found.append(made.bridge)
    return found
