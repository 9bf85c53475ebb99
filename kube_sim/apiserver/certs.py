"""Certificate signing for CertificateSigningRequests, with the openssl CLI."""

from __future__ import annotations

import base64
import math
import os
import secrets
import subprocess
import tempfile

KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
API_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
SIGNERS = (KUBELET_CLIENT, API_CLIENT, KUBELET_SERVING)


class SigningError(Exception):
    pass


def _run(args: list[str], data: bytes | None = None) -> bytes:
    proc = subprocess.run(args, input=data, capture_output=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise SigningError(proc.stderr.decode(errors="replace").strip() or "openssl failed")
    return proc.stdout


def decode_request(request_b64: str) -> bytes:
    try:
        pem = base64.b64decode(request_b64)
    except ValueError as exc:
        raise SigningError(f"spec.request is not base64: {exc}") from exc
    if b"CERTIFICATE REQUEST" not in pem:
        raise SigningError("spec.request does not hold a PEM certificate request")
    return pem


def csr_subject(pem: bytes) -> tuple[str, list[str]]:
    """(common name, organizations) of a PEM CSR; also checks its self-signature."""
    text = _run(
        ["openssl", "req", "-noout", "-verify", "-subject", "-nameopt", "RFC2253,-esc_msb"],
        pem,
    ).decode()
    line = next((ln for ln in text.splitlines() if ln.startswith("subject=")), "subject=")
    cn = ""
    orgs: list[str] = []
    for part in _split_rdn(line[len("subject=") :]):
        attr, _, value = part.partition("=")
        if attr.strip() == "CN":
            cn = value
        elif attr.strip() == "O":
            orgs.append(value)
    return cn, orgs


def _split_rdn(text: str) -> list[str]:
    parts, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",+":
            parts.append(current)
            current = ""
        else:
            current += ch
    if current:
        parts.append(current)
    return parts


def sign(pem: bytes, ca_cert: str, ca_key: str, usages: list[str], seconds: int) -> bytes:
    """Sign ``pem`` with the CA; returns the PEM certificate."""
    eku = []
    if "client auth" in usages:
        eku.append("clientAuth")
    if "server auth" in usages:
        eku.append("serverAuth")
    key_usage = ["digitalSignature"]
    if "key encipherment" in usages:
        key_usage.append("keyEncipherment")
    ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical," + ",".join(key_usage)]
    if eku:
        ext.append("extendedKeyUsage=" + ",".join(eku))
    days = max(1, math.ceil(seconds / 86400))
    with tempfile.TemporaryDirectory(prefix="kube-sim-csr-") as tmp:
        csr_path = os.path.join(tmp, "req.csr")
        ext_path = os.path.join(tmp, "ext.cnf")
        with open(csr_path, "wb") as fh:
            fh.write(pem)
        with open(ext_path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(ext) + "\n")
        return _run(
            [
                "openssl",
                "x509",
                "-req",
                "-in",
                csr_path,
                "-CA",
                ca_cert,
                "-CAkey",
                ca_key,
                "-set_serial",
                str(secrets.randbits(63)),
                "-days",
                str(days),
                "-extfile",
                ext_path,
                "-sha256",
            ]
        )
