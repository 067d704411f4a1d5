"""A local certificate authority for brokers started on this machine (`up --broker-per-node`).

Organisations on real hosts bring their own certificates (`broker_tls:` in nodes.yaml). A local
network with a broker per organisation still speaks TLS everywhere, so what is tested is what runs
across hosts: `up` makes, under `<run_dir>/tls/`, a CA (`ca.crt`, `ca.key`) and one certificate per
broker (`<id>.crt`, `<id>.key`) for the host of its URL. They are made once and reused; a missing
or unreadable file, or a certificate for another host, is made again (and everything signed by a
new CA with it). EC P-256 keys: quick to make, accepted by every TLS 1.2 stack.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from consortium.config import BrokerTlsConfig, NetworkConfig
from consortium.node.broker import write_private
from consortium.transport.url import parse_broker_url

VALID_DAYS = 825  # the longest validity clients accept for a server certificate


def ensure_local_certificates(config: NetworkConfig) -> None:
    """Make the local CA and every broker's certificate that is missing (see the module)."""
    if not config.generated_tls:
        return
    wanted = [(b.id, parse_broker_url(b.url).host, b.tls) for b in config.brokers if b.tls]
    if not wanted:
        return
    ca_path = wanted[0][2].cafile
    assert ca_path is not None  # generated configurations always name the CA
    ca_path.parent.mkdir(parents=True, exist_ok=True)
    ca_key_path = ca_path.with_suffix(".key")
    loaded = _load_pair(ca_path, ca_key_path)
    renewed = loaded is None
    if loaded is None:
        loaded = _make_ca(config.chain_id)
        _save_pair(loaded, ca_path, ca_key_path)
    ca_cert, ca_key = loaded
    for broker_id, host, tls in wanted:
        assert isinstance(tls, BrokerTlsConfig) and tls.certfile and tls.keyfile
        current = None if renewed else _load_pair(tls.certfile, tls.keyfile)
        if current is None or not _names(current[0], host, ca_cert):
            _save_pair(_make_leaf(broker_id, host, ca_cert, ca_key), tls.certfile, tls.keyfile)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _load_pair(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or cert.not_valid_after_utc < _now():
        return None
    return cert, key


def _save_pair(
    pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], cert_path: Path, key_path: Path
) -> None:
    cert, key = pair
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(key_path, key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _subject_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _names(cert: x509.Certificate, host: str, ca: x509.Certificate) -> bool:
    """Whether `cert` was issued by `ca` for `host`."""
    if cert.issuer != ca.subject:
        return False
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return _subject_name(host) in names


def _make_ca(chain_id: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{chain_id} local broker CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    broker_id: str, host: str, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"broker {broker_id}")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([_subject_name(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key
