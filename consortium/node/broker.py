"""Our own mosquitto: its configuration, logins and ACL, and its lifetime as a subprocess.

The shared broker lives in `<run_dir>/broker/`; with a broker per organisation (`brokers:
per_node`), organisation X's lives in `<run_dir>/brokers/X/`, and the logins' passwords of all
of them stay in `<run_dir>/broker/credentials`. The files:

- `mosquitto.conf`: one listener on the host and port of `broker_url`, anonymous logins refused.
- `passwords`: mosquitto's `$7$` PBKDF2-SHA512 hashes, one login per node (`node-<id>`), per member
  client (`client-<id>`), per load generator (`client-load-<n>`, topic name `load-<n>`) and the
  `operator`.
- `acl`: a node may publish only on its own topics (`pbft/<node>/#`, `commit/<node>/#`,
  `status/<node>`), a client only on `req/<client>` and `ask/<client>`, the operator only on
  `control/#`. Nodes and the operator read the whole chain; clients read `commit/+`, their own
  answers `commit/+/to/<client>`, and `status/+`. mosquitto silently drops
  a publish the ACL denies, so a node cannot speak for another one even before signatures are
  checked.
- `credentials`: the plain passwords (msgpack map `users: {username: password}`, mode 0600). They are
  random, made once and reused, so restarting the broker or a node keeps every login valid.
- `mosquitto.log`, `mosquitto.pid`: the running broker.

A broker per organisation: X's broker admits X's node only (no other node can log in there), every
client and the operator (so a client can fail over to any broker), and one bridge login from every
other organisation's broker. X's mosquitto.conf opens a bridge to every other broker (full mesh,
over TLS, `bridge-X-to-Y` with its own password), which carries out only what entered at X (see
`consortium.transport.topics`): X's node topics as they are, and what clients and the operator
published at X under `via/X/`. The ACL lets Y's bridge publish nothing else at X. Each bridge's
state is published on X's broker, retained, at `$SYS/broker/connection/bridge-X-to-Y/state` (1 up,
0 down): the operator's login may read it.

TLS: for an `mqtts://` broker URL pass `BrokerTls(certfile, keyfile, cafile)` to
`write_broker_config`; the listener then speaks TLS only (v1.2 or later). With `cafile` and
`require_client_certificate=True` clients must also present a certificate signed by that CA. Clients
give the CA file to `MqttSettings.ca_file` (or rely on the system trust store).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from consortium import codec
from consortium.codec import MAX_MESSAGE_BYTES
from consortium.config import BrokerConfig, NetworkConfig
from consortium.errors import ConfigError
from consortium.transport import topics
from consortium.transport.credentials import (
    OPERATOR_USERNAME,
    BrokerError,
    bridge_username,
    broker_dir,
    client_username,
    load_client_id,
    load_passwords,
    node_username,
)
from consortium.transport.url import BrokerEndpoint, parse_broker_url

DEFAULT_LOAD_CLIENTS = 8
# An MQTT PUBLISH adds a fixed header, the topic and (v5) properties to the payload.
PACKET_OVERHEAD_BYTES = 64 * 1024
MAX_QUEUED_MESSAGES = 100_000
MAX_QUEUED_BYTES = 512 * 1024 * 1024
MAX_INFLIGHT_MESSAGES = 1000
# A bridge pings an idle remote every 5 s (mosquitto's minimum) and, once it lost it, tries again
# after 1 s, backing off to 5 s: a restarted broker is back in the mesh within seconds.
BRIDGE_KEEPALIVE_S = 5
BRIDGE_RESTART_S = (1, 5)
# mosquitto_passwd's own defaults; the passwords are 192 random bits, so stretching adds little.
_PBKDF2_ITERATIONS = 101
_SALT_BYTES = 12
_PASSWORD_BYTES = 24
_CREDENTIALS_VERSION = 1
_LOG_TAIL_LINES = 15
_INSTALL_HINT = (
    "install it with your package manager (Debian: apt-get install mosquitto mosquitto-clients)"
)


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """Certificates for an `mqtts://` listener (PEM files)."""

    certfile: Path
    keyfile: Path
    cafile: Path | None = None
    require_client_certificate: bool = False


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """Where one broker keeps its configuration and runtime files."""

    directory: Path
    endpoint: BrokerEndpoint
    credentials_path: Path
    """Every login's password, for all of the network's brokers."""

    @property
    def config_path(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def password_path(self) -> Path:
        return self.directory / "passwords"

    @property
    def acl_path(self) -> Path:
        return self.directory / "acl"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    @property
    def pid_path(self) -> Path:
        return self.directory / "mosquitto.pid"


@dataclass(slots=True)
class BrokerProcess:
    """A mosquitto we started; `stop_broker` ends it."""

    files: BrokerFiles
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None


def broker_files(config: NetworkConfig, broker_id: str | None = None) -> BrokerFiles:
    """The files of broker `broker_id` (default: the first, the shared one if there is one)."""
    broker = config.broker(broker_id) if broker_id is not None else config.brokers[0]
    shared = broker_dir(config.run_dir)
    directory = config.run_dir / "brokers" / broker.id if config.per_node_brokers else shared
    return BrokerFiles(directory, parse_broker_url(broker.url), shared / "credentials")


# --- logins and ACL --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Login:
    username: str
    acl: tuple[str, ...]


def _logins(config: NetworkConfig, broker: BrokerConfig, load_clients: int) -> tuple[_Login, ...]:
    """Who may log in to `broker` and what each may publish and read."""
    chain = config.chain_id
    everything = topics.chain_filter(chain)
    own_nodes = (broker.id,) if config.per_node_brokers else config.node_ids
    logins = [
        _Login(
            node_username(node_id),
            (
                f"topic write {topics.pbft_topic(chain, node_id)}/#",
                f"topic write {topics.commit_topic(chain, node_id)}/#",
                f"topic write {topics.status_topic(chain, node_id)}",
                f"topic read {everything}",
            ),
        )
        for node_id in own_nodes
    ]
    member_ids = [m.id for m in config.members]
    load_ids = [load_client_id(i) for i in range(load_clients)]
    clash = sorted(set(member_ids) & set(load_ids))
    if clash:
        raise ConfigError(f"member id {clash[0]!r} is reserved for a load generator")
    logins += [
        _Login(
            client_username(client_id),
            (
                f"topic write {topics.request_topic(chain, client_id)}",
                f"topic write {topics.ask_topic(chain, client_id)}",
                f"topic read {topics.commit_filter(chain)}",
                f"topic read {topics.answer_filter(chain, client_id)}",
                f"topic read {topics.status_filter(chain)}",
            ),
        )
        for client_id in member_ids + load_ids
    ]
    logins.append(
        _Login(
            OPERATOR_USERNAME,
            (
                f"topic write {topics.control_filter(chain)}",
                f"topic read {everything}",
                f"topic read {topics.BRIDGE_STATE_FILTER}",
            ),
        )
    )
    if config.per_node_brokers:
        logins += [
            _Login(bridge_username(other.id, broker.id), _bridged_in(chain, other.id))
            for other in config.brokers
            if other.id != broker.id
        ]
    return tuple(logins)


def _bridged_out(chain: str, broker_id: str) -> tuple[tuple[str, int, str], ...]:
    """What `broker_id`'s bridges carry out, as (pattern, QoS, remote prefix) under the chain's
    root: its node's own topics unchanged, what clients published there under `via/`."""
    root = topics.chain_filter(chain).removesuffix("#")
    own = (
        topics.pbft_topic(chain, broker_id) + "/#",
        topics.commit_topic(chain, broker_id) + "/#",
        topics.status_topic(chain, broker_id),
    )
    from_clients = tuple(f"{kind}/+" for kind in topics.BRIDGED_FROM_CLIENTS)
    qos = {str(topics.TopicKind.CONTROL) + "/+": 1}  # the operator publishes control at QoS 1
    return (
        *((topic.removeprefix(root), 0, root) for topic in own),
        *(
            (pattern, qos.get(pattern, 0), topics.via_prefix(chain, broker_id))
            for pattern in from_clients
        ),
    )


def _bridged_in(chain: str, source_id: str) -> tuple[str, ...]:
    """The ACL of `source_id`'s bridge at another broker: exactly what that bridge carries out."""
    return tuple(
        f"topic write {prefix}{pattern}" for pattern, _, prefix in _bridged_out(chain, source_id)
    )


def _password_hash(password: str) -> str:
    """mosquitto's `$7$<iterations>$<salt>$<digest>` (PBKDF2-HMAC-SHA512, base64 fields)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, _PBKDF2_ITERATIONS)
    return "$".join(
        (
            "",
            "7",
            str(_PBKDF2_ITERATIONS),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )


def write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 from the first byte, so no secret is ever world-readable."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _ensure_passwords(path: Path, usernames: list[str]) -> dict[str, str]:
    """Reuse every stored password and make one for each new login."""
    passwords = load_passwords(path)
    missing = [name for name in usernames if name not in passwords]
    for name in missing:
        passwords[name] = secrets.token_urlsafe(_PASSWORD_BYTES)
    if missing or not path.exists():
        write_private(path, codec.encode({"users": passwords, "version": _CREDENTIALS_VERSION}))
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)  # a copied file may have lost its mode
    return passwords


# --- configuration -----------------------------------------------------------------------------


def _config_path_value(path: Path) -> str:
    text = str(path.resolve())
    if "\n" in text or "\r" in text:
        raise BrokerError(f"path {text!r} cannot appear in mosquitto.conf")
    return text


def _listener_lines(endpoint: BrokerEndpoint, tls: BrokerTls | None) -> list[str]:
    lines = [f"listener {endpoint.port} {endpoint.host}"]
    if endpoint.tls != (tls is not None):
        raise BrokerError(
            f"broker {endpoint.url}: TLS certificates are needed for mqtts:// and only for mqtts://"
        )
    if tls is not None:
        for name, path in (
            ("certfile", tls.certfile),
            ("keyfile", tls.keyfile),
            ("cafile", tls.cafile),
        ):
            if path is None:
                continue
            if not path.is_file():
                raise BrokerError(f"TLS {name} {path} does not exist")
            lines.append(f"{name} {_config_path_value(path)}")
        lines.append("tls_version tlsv1.2")
        if tls.require_client_certificate:
            if tls.cafile is None:
                raise BrokerError("requiring client certificates needs a cafile to check them")
            lines.append("require_certificate true")
    return lines


def _bridge_lines(
    config: NetworkConfig, broker: BrokerConfig, passwords: dict[str, str]
) -> list[str]:
    """One bridge to every other organisation's broker (see the module docstring)."""
    root = topics.chain_filter(config.chain_id).removesuffix("#")
    ca = broker.tls.cafile if broker.tls is not None else None
    lines: list[str] = []
    for other in config.brokers:
        if other.id == broker.id:
            continue
        name = bridge_username(broker.id, other.id)
        remote = parse_broker_url(other.url)
        lines += [
            "",
            f"connection {name}",
            f"address {remote.host}:{remote.port}",
            "bridge_protocol_version mqttv311",
            "try_private true",
            "cleansession true",
            "notifications true",
            "notifications_local_only true",
            f"keepalive_interval {BRIDGE_KEEPALIVE_S}",
            "restart_timeout {} {}".format(*BRIDGE_RESTART_S),
            f"remote_clientid {name}",
            f"remote_username {name}",
            f"remote_password {passwords[name]}",
        ]
        if remote.tls:
            lines += [
                f"bridge_cafile {_config_path_value(ca)}" if ca else "bridge_capath /etc/ssl/certs",
                "bridge_tls_version tlsv1.2",
                "bridge_insecure false",
            ]
        lines += [
            f"topic {pattern} out {qos} {root} {prefix}"
            for pattern, qos, prefix in _bridged_out(config.chain_id, broker.id)
        ]
    return lines


def _mosquitto_conf(files: BrokerFiles, tls: BrokerTls | None, bridges: list[str]) -> str:
    lines = [
        "# Generated by consortium; rewritten on every start, edit nodes.yaml instead.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {_config_path_value(files.password_path)}",
        f"acl_file {_config_path_value(files.acl_path)}",
        "persistence false",
        # Payloads our codec would reject are dropped by the broker (message_size_limit) without
        # disconnecting the sender; max_packet_size only guards against absurd packets.
        f"message_size_limit {MAX_MESSAGE_BYTES}",
        f"max_packet_size {MAX_MESSAGE_BYTES + PACKET_OVERHEAD_BYTES}",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        "set_tcp_nodelay true",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    ]
    if os.geteuid() == 0:
        # As root mosquitto would switch to the `mosquitto` user, who cannot read our 0600 files.
        lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
    lines += _listener_lines(files.endpoint, tls)
    # Bridges last: every line after `connection` belongs to that bridge.
    return "\n".join(lines + bridges) + "\n"


def write_broker_config(
    config: NetworkConfig,
    *,
    broker_id: str | None = None,
    tls: BrokerTls | None = None,
    load_clients: int = DEFAULT_LOAD_CLIENTS,
) -> BrokerFiles:
    """Write (or refresh) a broker's configuration, logins, ACL and bridges; passwords are kept.
    `broker_id`: which one (default: the first, the shared one if there is one)."""
    broker = config.broker(broker_id) if broker_id is not None else config.brokers[0]
    files = broker_files(config, broker.id)
    files.directory.mkdir(parents=True, exist_ok=True)
    files.credentials_path.parent.mkdir(parents=True, exist_ok=True)
    logins = _logins(config, broker, load_clients)
    outgoing = [
        bridge_username(broker.id, other.id)
        for other in config.brokers
        if config.per_node_brokers and other.id != broker.id
    ]
    passwords = _ensure_passwords(
        files.credentials_path, [login.username for login in logins] + outgoing
    )
    password_lines = [
        f"{login.username}:{_password_hash(passwords[login.username])}" for login in logins
    ]
    write_private(files.password_path, ("\n".join(password_lines) + "\n").encode())
    acl_blocks = ["\n".join((f"user {login.username}", *login.acl)) for login in logins]
    acl_text = "# Generated by consortium: who may publish and read what.\n\n"
    write_private(files.acl_path, (acl_text + "\n\n".join(acl_blocks) + "\n").encode())
    bridges = _bridge_lines(config, broker, passwords) if config.per_node_brokers else []
    write_private(files.config_path, _mosquitto_conf(files, tls, bridges).encode())
    return files


# --- process lifetime --------------------------------------------------------------------------


def find_mosquitto() -> str:
    """The mosquitto binary; Debian installs it in /usr/sbin, often not on a user's PATH."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in (
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/opt/homebrew/sbin/mosquitto",
    ):
        if os.access(candidate, os.X_OK):
            return candidate
    raise BrokerError(f"mosquitto is not installed: {_INSTALL_HINT}")


def _log_since(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            text = file.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-_LOG_TAIL_LINES:])


def _port_in_use(endpoint: BrokerEndpoint) -> bool:
    try:
        infos = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BrokerError(f"broker host {endpoint.host!r} does not resolve: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # SO_REUSEADDR as mosquitto sets it, so a just-closed broker's TIME_WAIT does not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise BrokerError(
                f"cannot listen on {endpoint.host}:{endpoint.port}: {exc.strerror}"
            ) from None
    return False


def _mqtt_probe_packet() -> bytes:
    """An MQTT 3.1.1 CONNECT without credentials: any CONNACK, even a refusal, proves a broker."""
    client_id = b"consortium-probe"
    variable_header = b"\x00\x04MQTT\x04\x02\x00\x05"
    body = variable_header + len(client_id).to_bytes(2, "big") + client_id
    return bytes((0x10, len(body))) + body


def _answers_mqtt(endpoint: BrokerEndpoint) -> bool:
    """Whether an MQTT broker answers on `endpoint`.

    A TCP connect is not enough: mosquitto listens before it loads the TLS certificates and may
    still exit. Over TLS the probe does not check the certificate; it only asks our own process.
    """
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=0.5) as raw:
            if endpoint.tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                with context.wrap_socket(raw, server_hostname=endpoint.host) as secure:
                    return _exchange_connect(secure)
            return _exchange_connect(raw)
    except OSError:
        return False


def _exchange_connect(connection: socket.socket) -> bool:
    connection.sendall(_mqtt_probe_packet())
    answer = b""
    while len(answer) < 4:
        chunk = connection.recv(4 - len(answer))
        if not chunk:
            return False
        answer += chunk
    return answer[:2] == b"\x20\x02"


def running_broker_pid(config: NetworkConfig, broker_id: str | None = None) -> int | None:
    """The pid of a mosquitto started for this network, if it is still running."""
    return _running_pid(broker_files(config, broker_id))


def _running_pid(files: BrokerFiles) -> int | None:
    try:
        pid = int(files.pid_path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_our_broker(pid, files.config_path) else None


def _is_our_broker(pid: int, config_path: Path) -> bool:
    """Whether `pid` is a mosquitto running our configuration (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (
        any(b"mosquitto" in arg for arg in cmdline[:1])
        and str(config_path.resolve()).encode() in cmdline
    )


def start_broker(
    files: BrokerFiles, *, ready_timeout_s: float = 5.0, mosquitto: str | None = None
) -> BrokerProcess:
    """Start mosquitto on `files` and return once it answers an MQTT CONNECT.

    Raises `BrokerError` (with the end of the broker's log) if it exits or is not listening within
    `ready_timeout_s`; the process is then stopped, never left behind.
    """
    binary = mosquitto or find_mosquitto()
    if not files.config_path.exists():
        raise BrokerError(f"no broker configuration at {files.config_path}")
    running = _running_pid(files)
    if running is not None:
        raise BrokerError(
            f"the broker is already running (pid {running}); stop it with `consortium down`"
        )
    if _port_in_use(files.endpoint):
        raise BrokerError(
            f"port {files.endpoint.port} on {files.endpoint.host} is already in use: stop the other "
            "broker or choose another port in nodes.yaml (broker:)"
        )
    with files.log_path.open("ab") as log:
        log_offset = log.tell()
        log.write(
            f"--- consortium: starting {binary} at {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode()
        )
        log.flush()
        popen = subprocess.Popen(
            [binary, "-c", str(files.config_path.resolve())],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
        )
    process = BrokerProcess(files, popen)
    files.pid_path.write_text(f"{popen.pid}\n")
    deadline = time.monotonic() + ready_timeout_s
    while True:
        if not process.is_alive():
            stop_broker(process)
            raise BrokerError(
                f"mosquitto exited with status {popen.returncode}; its log says:\n"
                + _log_since(files.log_path, log_offset)
            )
        if _answers_mqtt(files.endpoint):
            return process
        if time.monotonic() > deadline:
            stop_broker(process)
            raise BrokerError(
                f"mosquitto did not answer on {files.endpoint.host}:{files.endpoint.port} within "
                f"{ready_timeout_s:g} s; its log says:\n" + _log_since(files.log_path, log_offset)
            )
        time.sleep(0.02)


def stop_broker(process: BrokerProcess, *, timeout_s: float = 5.0) -> None:
    """Stop a broker we started: SIGTERM, then SIGKILL after `timeout_s`. Safe to call twice."""
    if process.is_alive():
        process.popen.terminate()
        try:
            process.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()
    _remove_pid_file(process.files.pid_path, process.pid)


def stop_running_broker(
    config: NetworkConfig,
    broker_id: str | None = None,
    *,
    timeout_s: float = 5.0,
    kill: bool = False,
) -> bool:
    """Stop a broker another process started for this network (`consortium down`); with `kill`,
    SIGKILL at once (a crash).

    Returns whether one was running. The pid file is trusted only if that pid is a mosquitto
    running this network's configuration, since pids get reused.
    """
    files = broker_files(config, broker_id)
    pid = _running_pid(files)
    pid_path = files.pid_path
    if pid is None:
        with contextlib.suppress(FileNotFoundError):
            pid_path.unlink()
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while process_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if process_exists(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _remove_pid_file(pid_path, pid)
    return True


def start_configured(config: NetworkConfig, broker_id: str) -> BrokerProcess:
    """Write one of the network's brokers' configuration (passwords kept, TLS from nodes.yaml)
    and start it."""
    files = write_broker_config(config, broker_id=broker_id, tls=configured_tls(config, broker_id))
    return start_broker(files)


def restart_broker(config: NetworkConfig, broker_id: str) -> BrokerProcess:
    """(Re)start one of the network's brokers: SIGKILL it if it runs, then `start_configured`.
    Its bridges and everyone's connections come back by themselves."""
    stop_running_broker(config, broker_id, kill=True)
    return start_configured(config, broker_id)


def process_exists(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers signal 0; it is gone for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _remove_pid_file(pid_path: Path, pid: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        if int(pid_path.read_text().strip()) == pid:
            pid_path.unlink()


# --- TLS from nodes.yaml -------------------------------------------------------------------------


def configured_tls(config: NetworkConfig, broker_id: str | None = None) -> BrokerTls | None:
    """A broker listener's certificates from nodes.yaml (`broker_tls:`, or with a broker per
    organisation the node's own), for `mqtts://`."""
    broker = config.broker(broker_id) if broker_id is not None else config.brokers[0]
    tls = broker.tls
    if tls is None or tls.certfile is None or tls.keyfile is None:
        return None
    return BrokerTls(tls.certfile, tls.keyfile, tls.cafile)
