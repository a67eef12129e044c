"""A private CA and a server certificate for the sandbox's HTTPS listener.

kubectl sends a bearer token only over TLS, so the sandbox serves HTTPS on 127.0.0.1 with a CA it
generates once per state directory; the kubeconfig carries that CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def issue_ca(common_name: str, days: int = 3650) -> tuple[bytes, bytes]:
    """A self-signed CA certificate and key (PEM)."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def issue_server_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    common_name: str,
    dns_names: list[str],
    ips: list[str],
    days: int = 825,
) -> tuple[bytes, bytes]:
    """A server certificate (PEM cert, PEM key) signed by the CA, for the given names and IPs."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _key()
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def ensure_serving_pki(state_dir: Path) -> tuple[Path, Path, Path]:
    """CA and server certificate files in the state directory (made once); returns (ca, cert, key)."""
    ca, cert, key = state_dir / "ca.crt", state_dir / "apiserver.crt", state_dir / "apiserver.key"
    if not (ca.exists() and cert.exists() and key.exists()):
        ca_pem, ca_key_pem = issue_ca("meshbook-sandbox-ca")
        cert_pem, key_pem = issue_server_cert(
            ca_pem,
            ca_key_pem,
            "kube-apiserver",
            ["localhost", "kubernetes", "kubernetes.default.svc"],
            ["127.0.0.1"],
        )
        ca.write_bytes(ca_pem)
        (state_dir / "ca.key").write_bytes(ca_key_pem)
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        for path in (state_dir / "ca.key", key):
            path.chmod(0o600)
    return ca, cert, key
