"""Real X.509 certificates and keys through the openssl CLI (the hosts have it; no pip packages).

Everything here works on PEM strings; files are written by the callers. Private keys never
leave memory except inside a private (0700) temporary directory while openssl runs.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

KEY_ALGORITHMS: dict[str, list[str]] = {
    "RSA-2048": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "RSA-3072": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
    "RSA-4096": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
    "ECDSA-P256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ECDSA-P384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
}
DEFAULT_ALGORITHM = "RSA-2048"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9*][A-Za-z0-9.*_-]*$")
_SAFE_SUBJECT = re.compile(r"^[A-Za-z0-9 :._@-]+$")


class PKIError(RuntimeError):
    """openssl failed or a certificate could not be read."""


def _openssl(args: Sequence[str], stdin: bytes | None = None, cwd: str | None = None) -> bytes:
    try:
        proc = subprocess.run(
            ["openssl", *args],
            input=stdin,
            capture_output=True,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as exc:
        raise PKIError("openssl is not installed") from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip()
        raise PKIError(f"openssl {args[0]} failed: {detail}")
    return proc.stdout


class _Scratch:
    """A private temporary directory for openssl's input files."""

    def __enter__(self) -> Path:
        self._tmp = tempfile.TemporaryDirectory(prefix="kube-sim-pki-")
        os.chmod(self._tmp.name, 0o700)
        return Path(self._tmp.name)

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()


def _write_private(path: Path, data: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
    return str(path)


def generate_key(algorithm: str = DEFAULT_ALGORITHM) -> str:
    """A new private key (PKCS#8 PEM)."""
    try:
        opts = KEY_ALGORITHMS[algorithm]
    except KeyError:
        raise PKIError(f"unsupported key algorithm {algorithm!r}") from None
    return _openssl(["genpkey", *opts]).decode()


def public_key(key_pem: str) -> str:
    """The PEM SubjectPublicKeyInfo of a private key (what kubeadm writes as sa.pub)."""
    with _Scratch() as tmp:
        key = _write_private(tmp / "key.pem", key_pem)
        return _openssl(["pkey", "-in", key, "-pubout"]).decode()


def _subject(common_name: str, organizations: Iterable[str] = ()) -> str:
    parts = []
    for org in organizations:
        if not _SAFE_SUBJECT.match(org):
            raise PKIError(f"unsupported characters in organization {org!r}")
        parts.append(f"/O={org}")
    if not _SAFE_SUBJECT.match(common_name):
        raise PKIError(f"unsupported characters in common name {common_name!r}")
    parts.append(f"/CN={common_name}")
    return "".join(parts)


def create_ca(key_pem: str, common_name: str = "kubernetes", days: int = 3650) -> str:
    """A self-signed CA certificate for `key_pem`."""
    config = (
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = placeholder\n"
        "[v3_ca]\nbasicConstraints = critical, CA:TRUE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment, keyCertSign\n"
        "subjectKeyIdentifier = hash\n"
    )
    with _Scratch() as tmp:
        key = _write_private(tmp / "ca.key", key_pem)
        (tmp / "ca.cnf").write_text(config)
        return _openssl(
            [
                "req",
                "-x509",
                "-new",
                "-key",
                key,
                "-subj",
                _subject(common_name),
                "-days",
                str(days),
                "-sha256",
                "-set_serial",
                _serial(),
                "-config",
                str(tmp / "ca.cnf"),
                "-extensions",
                "v3_ca",
            ]
        ).decode()


def make_csr(key_pem: str, common_name: str, organizations: Iterable[str] = ()) -> str:
    """A PEM certificate signing request for `key_pem`."""
    config = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = placeholder\n"
    with _Scratch() as tmp:
        key = _write_private(tmp / "key.pem", key_pem)
        (tmp / "req.cnf").write_text(config)
        return _openssl(
            [
                "req",
                "-new",
                "-key",
                key,
                "-subj",
                _subject(common_name, organizations),
                "-config",
                str(tmp / "req.cnf"),
            ]
        ).decode()


def sign_csr(
    csr_pem: str,
    ca_cert_pem: str,
    ca_key_pem: str,
    *,
    days: int = 365,
    usage: str = "client",
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
) -> str:
    """Sign a CSR with the CA (subject taken from the CSR); usage is client, server or both."""
    eku = {"client": "clientAuth", "server": "serverAuth", "both": "serverAuth, clientAuth"}[usage]
    lines = [
        "[v3]",
        "basicConstraints = critical, CA:FALSE",
        "keyUsage = critical, digitalSignature, keyEncipherment",
        f"extendedKeyUsage = {eku}",
        "authorityKeyIdentifier = keyid",
    ]
    sans = [f"DNS:{_check_dns(name)}" for name in _unique(dns_names)]
    sans += [f"IP:{ipaddress.ip_address(ip)}" for ip in _unique(ip_addresses)]
    if sans:
        lines.append("subjectAltName = " + ", ".join(sans))
    with _Scratch() as tmp:
        (tmp / "req.csr").write_text(csr_pem)
        (tmp / "ca.crt").write_text(ca_cert_pem)
        ca_key = _write_private(tmp / "ca.key", ca_key_pem)
        (tmp / "ext.cnf").write_text("\n".join(lines) + "\n")
        return _openssl(
            [
                "x509",
                "-req",
                "-in",
                str(tmp / "req.csr"),
                "-CA",
                str(tmp / "ca.crt"),
                "-CAkey",
                ca_key,
                "-set_serial",
                _serial(),
                "-days",
                str(days),
                "-sha256",
                "-extfile",
                str(tmp / "ext.cnf"),
                "-extensions",
                "v3",
            ]
        ).decode()


def issue(
    ca_cert_pem: str,
    ca_key_pem: str,
    common_name: str,
    organizations: Iterable[str] = (),
    *,
    usage: str = "client",
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    days: int = 365,
    algorithm: str = DEFAULT_ALGORITHM,
) -> tuple[str, str]:
    """A new key and a certificate for it signed by the CA: (key_pem, cert_pem)."""
    key_pem = generate_key(algorithm)
    csr_pem = make_csr(key_pem, common_name, organizations)
    cert_pem = sign_csr(
        csr_pem,
        ca_cert_pem,
        ca_key_pem,
        days=days,
        usage=usage,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
    )
    return key_pem, cert_pem


def certificate_text(cert_pem: str) -> str:
    """`openssl x509 -text` of a certificate (for messages and tests)."""
    return _openssl(["x509", "-noout", "-text"], stdin=cert_pem.encode()).decode()


def _serial() -> str:
    return "0x" + secrets.token_hex(16)


def _unique(items: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.append(item)
    return seen


def _check_dns(name: str) -> str:
    if not _SAFE_NAME.match(name):
        raise PKIError(f"invalid DNS name for a certificate: {name!r}")
    return name


# -- CA certificate hashes (pure Python, no openssl needed) ------------------------------------
def pem_to_der(pem: str, label: str = "CERTIFICATE") -> bytes:
    begin = f"-----BEGIN {label}-----"
    end = f"-----END {label}-----"
    start = pem.find(begin)
    stop = pem.find(end, start)
    if start < 0 or stop < 0:
        raise PKIError(f"no PEM {label} found")
    body = pem[start + len(begin) : stop]
    return base64.b64decode("".join(body.split()))


def first_pem_block(pem: str, label: str = "CERTIFICATE") -> str:
    """The first PEM block with the given label, as text."""
    der = pem_to_der(pem, label)
    b64 = base64.b64encode(der).decode()
    body = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


def _der_element(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content_start, element_end) of the DER element at offset."""
    if offset + 2 > len(data):
        raise PKIError("truncated DER")
    tag = data[offset]
    length = data[offset + 1]
    pos = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise PKIError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise PKIError("truncated DER")
    return tag, pos, end


def subject_public_key_info(cert_der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a DER certificate."""
    tag, cert_start, _ = _der_element(cert_der, 0)
    if tag != 0x30:
        raise PKIError("not a certificate")
    tag, pos, tbs_end = _der_element(cert_der, cert_start)
    if tag != 0x30:
        raise PKIError("not a certificate")
    fields = []
    while pos < tbs_end:
        tag, _content, end = _der_element(cert_der, pos)
        fields.append((tag, pos, end))
        pos = end
    if fields and fields[0][0] == 0xA0:  # explicit version
        fields = fields[1:]
    # serial, signature, issuer, validity, subject, subjectPublicKeyInfo
    if len(fields) < 6 or fields[5][0] != 0x30:
        raise PKIError("certificate has no SubjectPublicKeyInfo")
    _tag, start, end = fields[5]
    return cert_der[start:end]


def ca_cert_hash(cert_pem: str) -> str:
    """kubeadm's CA pin: 'sha256:' + hex(sha256(DER SubjectPublicKeyInfo))."""
    spki = subject_public_key_info(pem_to_der(cert_pem))
    return "sha256:" + hashlib.sha256(spki).hexdigest()
