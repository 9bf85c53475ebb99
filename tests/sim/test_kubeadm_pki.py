"""Certificates, CA pins, bootstrap tokens, JWS signatures and kubeconfigs (kubeadm stand-in)."""

from __future__ import annotations

import base64
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kube_sim.common import kubeconfig, paths, pki, timeutil
from kube_sim.kubeadm_lib import certs, config, tokenops, tokens

CONFIG = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 10.0.3.5, bindPort: 6443}
nodeRegistration: {name: cp-0}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.36.2
controlPlaneEndpoint: api.example.com:6443
encryptionAlgorithm: ECDSA-P256
networking: {serviceSubnet: 10.100.0.0/16, dnsDomain: corp.local}
apiServer:
  certSANs: [extra.example.com, 192.0.2.7]
"""


@pytest.fixture(scope="module")
def ca() -> tuple[str, str]:
    key = pki.generate_key("ECDSA-P256")
    return pki.create_ca(key, "kubernetes", 3650), key


def openssl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["openssl", *args], input=stdin, capture_output=True, text=True, check=True
    ).stdout


def test_ca_hash_matches_the_openssl_pipeline(ca: tuple[str, str]) -> None:
    cert, _key = ca
    pub = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout"],
        input=cert.encode(),
        capture_output=True,
        check=True,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"],
        input=pub,
        capture_output=True,
        check=True,
    ).stdout
    digest = (
        subprocess.run(
            ["openssl", "dgst", "-sha256", "-hex"], input=der, capture_output=True, check=True
        )
        .stdout.decode()
        .split()[-1]
    )
    assert pki.ca_cert_hash(cert) == f"sha256:{digest}"


def test_ca_hash_rsa_too() -> None:
    key = pki.generate_key("RSA-2048")
    cert = pki.create_ca(key)
    text = openssl("x509", "-noout", "-text", stdin=cert)
    assert "CA:TRUE" in text and "Subject: CN = kubernetes" in text
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", pki.ca_cert_hash(cert))


def test_client_certificate_subject_and_usage(ca: tuple[str, str], tmp_path: Path) -> None:
    key, cert = pki.issue(*ca, "system:node:w-1", ["system:nodes"], algorithm="ECDSA-P256")
    text = openssl("x509", "-noout", "-text", stdin=cert)
    assert "O = system:nodes, CN = system:node:w-1" in text
    assert "TLS Web Client Authentication" in text
    (tmp_path / "ca.crt").write_text(ca[0])
    (tmp_path / "node.crt").write_text(cert)
    openssl("verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / "node.crt"))
    assert "BEGIN PRIVATE KEY" in key


def test_apiserver_sans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    settings = config.init_settings(config.parse_documents(CONFIG, "cfg"))
    dns, ips = certs.apiserver_sans(settings)
    assert {
        "cp-0",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.corp.local",
        "api.example.com",
        "extra.example.com",
    } <= set(dns)
    assert {"10.100.0.1", "10.0.3.5", "127.0.0.1", "192.0.2.7"} <= set(ips)
    messages: list[str] = []
    cluster_ca = certs.create_certificates(settings, messages.append)
    cert_file = tmp_path / "etc/kubernetes/pki/apiserver.crt"
    text = openssl("x509", "-noout", "-text", "-in", str(cert_file))
    for name in dns:
        assert f"DNS:{name}" in text
    for ip in ips:
        assert f"IP Address:{ip}" in text
    assert "TLS Web Server Authentication" in text
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(tmp_path / "etc/kubernetes/pki/ca.crt"),
            str(cert_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    pki_dir = tmp_path / "etc/kubernetes/pki"
    assert (pki_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (pki_dir / "apiserver.key").stat().st_mode & 0o777 == 0o600
    assert (pki_dir / "sa.key").stat().st_mode & 0o777 == 0o600
    assert "PUBLIC KEY" in (pki_dir / "sa.pub").read_text()
    # A second run reuses the CA (real kubeadm keeps an existing CA).
    again = certs.create_certificates(settings, messages.append)
    assert again.cert_pem == cluster_ca.cert_pem
    assert "[certs] Using existing ca certificate authority" in messages

    certs.write_kubeconfigs(settings, cluster_ca, messages.append)
    admin = kubeconfig.load(paths.ADMIN_CONF)
    assert admin.server == "https://api.example.com:6443"
    assert "O = kubeadm:cluster-admins, CN = kubernetes-admin" in openssl(
        "x509", "-noout", "-subject", stdin=admin.cert_pem
    )
    super_admin = kubeconfig.load(paths.SUPER_ADMIN_CONF)
    assert "O = system:masters" in openssl("x509", "-noout", "-subject", stdin=super_admin.cert_pem)
    scheduler = kubeconfig.load(paths.SCHEDULER_CONF)
    assert scheduler.server == "https://10.0.3.5:6443"
    kubelet = kubeconfig.load(paths.KUBELET_CONF)
    assert "O = system:nodes, CN = system:node:cp-0" in openssl(
        "x509", "-noout", "-subject", stdin=kubelet.cert_pem
    )
    conf = tmp_path / "etc/kubernetes/admin.conf"
    assert conf.stat().st_mode & 0o777 == 0o600
    assert (
        tmp_path / "var/lib/kubelet/pki/kubelet-client-current.pem"
    ).stat().st_mode & 0o777 == 0o600


def test_kubeconfig_round_trip(ca: tuple[str, str]) -> None:
    key, cert = pki.issue(*ca, "kubernetes-admin", ["kubeadm:cluster-admins"])
    doc = kubeconfig.build(
        cluster_name="kubernetes",
        server="https://10.0.3.5:6443",
        ca_pem=ca[0],
        user="kubernetes-admin",
        cert_pem=cert,
        key_pem=key,
    )
    text = kubeconfig.dumps(doc)
    assert "current-context: kubernetes-admin@kubernetes" in text
    creds = kubeconfig.credentials(kubeconfig.parse(text))
    assert creds.server == "https://10.0.3.5:6443"
    assert creds.ca_pem == ca[0] and creds.cert_pem == cert and creds.key_pem == key
    yaml = pytest.importorskip("yaml")
    parsed = yaml.safe_load(text)
    assert base64.b64decode(parsed["users"][0]["user"]["client-key-data"]).decode() == key


def test_token_format_and_secret() -> None:
    seen = {tokens.generate() for _ in range(50)}
    assert len(seen) == 50
    assert all(tokens.TOKEN_RE.match(t) for t in seen)
    with pytest.raises(ValueError, match="was not of the form"):
        tokens.split("abc.def")
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    token = tokens.BootstrapToken("abcdef.0123456789abcdef", description="w-1", ttl=900)
    secret = token.secret(now)
    assert secret["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {
        "token-id": "abcdef",
        "token-secret": "0123456789abcdef",
        "description": "w-1",
        "expiration": "2030-01-01T00:15:00Z",
        "usage-bootstrap-signing": "true",
        "usage-bootstrap-authentication": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
    }
    back = tokens.from_secret(secret)
    assert back is not None and back.token == token.token
    assert back.expires == now + timedelta(minutes=15)
    assert sorted(back.usages) == ["authentication", "signing"]
    forever = tokens.BootstrapToken("abcdef.0123456789abcdef", ttl=0).secret(now)
    assert "expiration" not in forever["data"]


def test_jws_detached_signature() -> None:
    payload = "apiVersion: v1\nkind: Config\n"
    sig = tokens.jws_sign(payload, "abcdef", "0123456789abcdef")
    header, empty, _mac = sig.split(".")
    assert empty == ""
    assert base64.urlsafe_b64decode(header + "==") == b'{"alg":"HS256","kid":"abcdef"}'
    assert tokens.jws_verify(sig, payload, "abcdef", "0123456789abcdef")
    assert not tokens.jws_verify(sig, payload + " ", "abcdef", "0123456789abcdef")
    assert not tokens.jws_verify(sig, payload, "abcdef", "0123456789abcdeX")


def test_token_table_and_durations() -> None:
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    found = [
        tokens.BootstrapToken(
            "abcdef.0123456789abcdef", expires=now + timedelta(hours=23, minutes=59)
        ),
        tokens.BootstrapToken("zzzzzz.0123456789abcdef", expires=None, description="forever"),
        tokens.BootstrapToken("yyyyyy.0123456789abcdef", expires=now - timedelta(minutes=1)),
    ]
    table = tokenops.format_table(found, now)
    lines = table.splitlines()
    assert lines[0].split() == [
        "TOKEN",
        "TTL",
        "EXPIRES",
        "USAGES",
        "DESCRIPTION",
        "EXTRA",
        "GROUPS",
    ]
    assert "23h" in lines[1] and "2030-01-01T23:59:00Z" in lines[1] and "<none>" in lines[1]
    assert "<forever>" in lines[2] and "<never>" in lines[2]
    assert "<invalid>" in lines[3]
    assert timeutil.parse_duration("24h0m0s") == 86400
    assert timeutil.parse_duration("1h30m") == 5400
    assert timeutil.parse_duration("0") == 0
    assert timeutil.format_duration(86400) == "24h0m0s"
    with pytest.raises(ValueError):
        timeutil.parse_duration("15 minutes")


def test_join_command_shape(ca: tuple[str, str]) -> None:
    command = tokenops.join_command("10.0.3.5:6443", "abcdef.0123456789abcdef", ca[0])
    assert command.startswith("kubeadm join 10.0.3.5:6443 --token abcdef.0123456789abcdef ")
    assert f"--discovery-token-ca-cert-hash {pki.ca_cert_hash(ca[0])}" in command
