"""Join tokens and secret redaction."""

import re
import subprocess

from k8s_cluster import node
from k8s_cluster.redact import MASK, redact

TOKEN_FORMAT = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")


def test_bootstrap_tokens_have_kubeadm_format_and_differ():
    tokens = {node.new_bootstrap_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(TOKEN_FORMAT.match(token) for token in tokens)
    assert node.token_id("abcdef.0123456789abcdef") == "abcdef"


def test_ca_cert_hash_matches_openssl(tmp_path):
    key, crt = tmp_path / "ca.key", tmp_path / "ca.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            crt,
            "-subj",
            "/CN=kubernetes",
            "-days",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    pubkey = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout", "-in", crt], check=True, capture_output=True
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"],
        input=pubkey,
        check=True,
        capture_output=True,
    ).stdout
    digest = (
        subprocess.run(
            ["openssl", "dgst", "-sha256", "-hex"], input=der, check=True, capture_output=True
        )
        .stdout.decode()
        .split()[-1]
    )
    assert node.ca_cert_hash(crt.read_text()) == f"sha256:{digest}"


def test_join_command_output_is_redacted():
    token = "abcdef.0123456789abcdef"
    ca_hash = "sha256:" + "f" * 64
    line = f"kubeadm join 10.0.0.1:6443 --token {token} --discovery-token-ca-cert-hash {ca_hash}"
    out = redact(line)
    assert token not in out
    assert ca_hash in out  # the CA hash is public; it stays for debugging


def test_known_secret_values_are_redacted_even_without_a_pattern():
    assert redact("password is hunter2!", secrets=["hunter2"]) == f"password is {MASK}!"


def test_private_keys_certificate_keys_and_kubeconfig_credentials_are_redacted():
    text = "\n".join(
        [
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXktdjEAAAAA",
            "-----END OPENSSH PRIVATE KEY-----",
            "--certificate-key " + "0a" * 32,
            "    client-key-data: LS0tLS1CRUdJTi",
            "    token: eyJhbGciOi",
            "kept: line",
        ]
    )
    out = redact(text)
    for secret in ("b3BlbnNzaC1rZXktdjEAAAAA", "0a" * 32, "LS0tLS1CRUdJTi", "eyJhbGciOi"):
        assert secret not in out
    assert "kept: line" in out
