"""TLS files for test servers: a private CA, a server certificate for 127.0.0.1/localhost, a client certificate.

Sinks verify TLS by default, so a TLS test needs a CA the client can be told to trust rather than
a bare self-signed server certificate. :func:`make_tls_files` writes, into one directory:

* ``ca.pem`` / ``ca-key.pem``: the CA (give ``ca.pem`` to the client as its trust root);
* ``server.pem`` / ``server-key.pem``: signed by the CA, SAN ``IP:127.0.0.1``, ``IP:::1``, ``DNS:localhost``;
* ``client.pem`` / ``client-key.pem``: signed by the CA for client-certificate (mutual TLS) tests,
  subject CN ``pump-test-client``;
* ``other-ca.pem`` and ``other-client.pem``/``other-client-key.pem``: a second, unrelated CA and a
  client certificate from it, for "a certificate the server must refuse" tests.

Keys are ECDSA P-256 (fast to make, accepted by OpenSSL, GnuTLS and Java). Certificates are valid
from a day ago for 30 days, so clock skew between the pieces of a test never matters.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import pathlib

__all__ = ["TlsFiles", "make_tls_files"]


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files written by :func:`make_tls_files`."""

    directory: pathlib.Path

    @property
    def ca(self) -> pathlib.Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> pathlib.Path:
        return self.directory / "ca-key.pem"

    @property
    def server_cert(self) -> pathlib.Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> pathlib.Path:
        return self.directory / "server-key.pem"

    @property
    def client_cert(self) -> pathlib.Path:
        return self.directory / "client.pem"

    @property
    def client_key(self) -> pathlib.Path:
        return self.directory / "client-key.pem"

    @property
    def other_ca(self) -> pathlib.Path:
        return self.directory / "other-ca.pem"

    @property
    def other_client_cert(self) -> pathlib.Path:
        return self.directory / "other-client.pem"

    @property
    def other_client_key(self) -> pathlib.Path:
        return self.directory / "other-client-key.pem"

    def as_dict(self) -> dict[str, str]:
        """The paths by role, for ``Server.details["tls"]``."""
        names = ("ca", "server_cert", "server_key", "client_cert", "client_key", "other_ca", "other_client_cert", "other_client_key")
        return {name: str(getattr(self, name)) for name in names}


def make_tls_files(directory: pathlib.Path) -> TlsFiles:
    """Write a fresh CA, server and client certificates into ``directory`` (see the module docstring)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)

    def name(common_name: str) -> x509.Name:
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pump tests"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        return x509.Name(attributes)

    def write_key(key: ec.EllipticCurvePrivateKey, path: pathlib.Path) -> None:
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        path.write_bytes(pem)
        path.chmod(0o600)

    def write_cert(cert: x509.Certificate, path: pathlib.Path) -> None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def make_leaf(
        ca_key: ec.EllipticCurvePrivateKey,
        ca_cert: x509.Certificate,
        common_name: str,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName],
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    ca_key, ca_cert = make_ca("pump test CA")
    write_key(ca_key, files.ca_key)
    write_cert(ca_cert, files.ca)
    server_sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("localhost"),
    ]
    key, cert = make_leaf(ca_key, ca_cert, "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, server_sans)
    write_key(key, files.server_key)
    write_cert(cert, files.server_cert)
    key, cert = make_leaf(ca_key, ca_cert, "pump-test-client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    write_key(key, files.client_key)
    write_cert(cert, files.client_cert)

    other_key, other_cert = make_ca("unrelated test CA")
    write_cert(other_cert, files.other_ca)
    key, cert = make_leaf(other_key, other_cert, "pump-test-stranger", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    write_key(key, files.other_client_key)
    write_cert(cert, files.other_client_cert)
    return files
