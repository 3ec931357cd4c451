"""Test certificates, made fresh by each test session (none is committed): a CA, a server
certificate for 127.0.0.1/localhost, client certificates, and the bad ones the failure
tests need (another CA's, expired, for another host name). Made with `cryptography`
(a dev extra, pyproject.toml)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, as PEM files."""

    cert: str
    key: str


class _CA:
    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY).not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, cn: str, *, server: bool, hosts: tuple[str, ...] = (),
              expired: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        start, end = (now - 10 * _DAY, now - 5 * _DAY) if expired else (now - _DAY, now + 30 * _DAY)
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server
                 else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        if hosts:
            names: list[x509.GeneralName] = []
            for h in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(h)))
                except ValueError:
                    names.append(x509.DNSName(h))
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return b.sign(self.key, hashes.SHA256()), key


def _write(directory: str, name: str, cert: x509.Certificate,
           key: ec.EllipticCurvePrivateKey | None = None) -> Pair:
    cpath = os.path.join(directory, f"{name}.crt")
    with open(cpath, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    kpath = os.path.join(directory, f"{name}.key")
    if key is not None:
        fd = os.open(kpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return Pair(cpath, kpath)


@dataclass(frozen=True)
class PKI:
    """Every file a TLS test needs (paths under one directory)."""

    ca: str                 # the CA both sides trust
    other_ca: str           # a CA nobody here trusts
    server: Pair            # CN gofer, for 127.0.0.1 and localhost
    server_wrong_host: Pair  # signed by `ca`, but for gofer.invalid only
    server_expired: Pair
    alice: Pair             # client, CN alice
    bob: Pair               # client, CN bob
    client_expired: Pair    # CN alice, expired
    client_other_ca: Pair   # CN alice, signed by `other_ca`
    carol: Pair             # client, CN carol, revoked in `crl`
    server_revoked: Pair    # CN gofer, for 127.0.0.1 and localhost, revoked in `crl`
    crl: str                # `ca`'s revocation list: carol's and server_revoked's certificates


def _crl(directory: str, ca: _CA, *revoked: x509.Certificate) -> str:
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.name)
         .last_update(now - _DAY).next_update(now + 30 * _DAY))
    for cert in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                      .serial_number(cert.serial_number)
                                      .revocation_date(now - _DAY).build())
    crl = b.sign(ca.key, hashes.SHA256())
    path = os.path.join(directory, "ca.crl")
    with open(path, "wb") as f:
        f.write(crl.public_bytes(serialization.Encoding.PEM))
    return path


def make_pki(directory: str) -> PKI:
    """Write a fresh test PKI into `directory`."""
    ca, other = _CA("runpsc test CA"), _CA("runpsc other CA")
    local = ("127.0.0.1", "localhost")
    carol_cert, carol_key = ca.issue("carol", server=False)
    revoked_cert, revoked_key = ca.issue("gofer", server=True, hosts=local)
    return PKI(
        ca=_write(directory, "ca", ca.cert).cert,
        other_ca=_write(directory, "other-ca", other.cert).cert,
        server=_write(directory, "server", *ca.issue("gofer", server=True, hosts=local)),
        server_wrong_host=_write(directory, "server-wrong-host",
                                 *ca.issue("gofer", server=True, hosts=("gofer.invalid",))),
        server_expired=_write(directory, "server-expired",
                              *ca.issue("gofer", server=True, hosts=local, expired=True)),
        alice=_write(directory, "alice", *ca.issue("alice", server=False)),
        bob=_write(directory, "bob", *ca.issue("bob", server=False)),
        client_expired=_write(directory, "alice-expired",
                              *ca.issue("alice", server=False, expired=True)),
        client_other_ca=_write(directory, "alice-other", *other.issue("alice", server=False)),
        carol=_write(directory, "carol", carol_cert, carol_key),
        server_revoked=_write(directory, "server-revoked", revoked_cert, revoked_key),
        crl=_crl(directory, ca, carol_cert, revoked_cert),
    )
