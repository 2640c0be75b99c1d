"""A certificate for `connectome serve --tls`: the user's own, or a self-signed one made on
first use (neuprint-python speaks https only)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
HOSTS = ("localhost", "127.0.0.1", "::1")


def self_signed(folder: Path, days: int = 825) -> tuple[Path, Path]:
    """(certificate, key) in `folder`, made there on first use: a self-signed certificate for
    localhost and the loopback addresses. Give clients the certificate file to trust it
    (`Client(..., verify=<cert.pem>)`)."""
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "connectome-query (local)")])
    now = datetime.datetime.now(datetime.UTC)
    alt = [x509.DNSName("localhost")] + [x509.IPAddress(ipaddress.ip_address(h))
                                         for h in HOSTS[1:]]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
