"""The certs and kubeconfig phases of `kubeadm init`."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from kube_sim.common import kubeconfig, netinfo, paths, pki
from kube_sim.kubeadm_lib.config import InitSettings

ADMIN_GROUP = "kubeadm:cluster-admins"
SUPER_ADMIN_GROUP = "system:masters"


@dataclass
class ClusterCA:
    cert_pem: str
    key_pem: str


def _pki(name: str) -> str:
    return f"{paths.PKI_DIR}/{name}"


def _existing(name: str) -> str | None:
    try:
        return paths.host(_pki(name)).read_text()
    except OSError:
        return None


def apiserver_sans(settings: InitSettings) -> tuple[list[str], list[str]]:
    """DNS names and IPs of the API server serving certificate, as real kubeadm chooses them."""
    dns = [
        settings.node.name,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{settings.dns_domain}",
    ]
    ips = [settings.first_service_ip, settings.advertise_address, "127.0.0.1"]
    host = netinfo.hostname()
    if host not in dns:
        dns.append(host)
    if settings.control_plane_endpoint:
        cpe_host, _port = netinfo.split_host_port(settings.control_plane_endpoint, 0)
        (ips if netinfo.is_ip(cpe_host) else dns).append(cpe_host)
    for san in settings.cert_sans:
        (ips if netinfo.is_ip(san) else dns).append(san)

    def unique(items: list[str]) -> list[str]:
        out: list[str] = []
        for item in items:
            norm = str(ipaddress.ip_address(item)) if netinfo.is_ip(item) else item
            if norm and norm not in out:
                out.append(norm)
        return out

    return unique(dns), unique(ips)


def create_certificates(settings: InitSettings, say: Callable[[str], None]) -> ClusterCA:
    """CA, API server serving certificate and service-account keys under /etc/kubernetes/pki."""
    say(f'[certs] Using certificateDir folder "{paths.PKI_DIR}"')
    algorithm = settings.encryption_algorithm
    ca_cert, ca_key = _existing("ca.crt"), _existing("ca.key")
    if ca_cert and ca_key:
        say("[certs] Using existing ca certificate authority")
    else:
        say('[certs] Generating "ca" certificate and key')
        ca_key = pki.generate_key(algorithm)
        ca_cert = pki.create_ca(ca_key, "kubernetes", settings.ca_validity_days)
        paths.write_file(_pki("ca.key"), ca_key, 0o600)
        paths.write_file(_pki("ca.crt"), ca_cert, 0o644)

    say('[certs] Generating "apiserver" certificate and key')
    dns, ips = apiserver_sans(settings)
    say(
        f"[certs] apiserver serving cert is signed for DNS names [{' '.join(dns)}] and IPs "
        f"[{' '.join(ips)}]"
    )
    key, cert = pki.issue(
        ca_cert,
        ca_key,
        "kube-apiserver",
        usage="server",
        dns_names=dns,
        ip_addresses=ips,
        days=settings.cert_validity_days,
        algorithm=algorithm,
    )
    paths.write_file(_pki("apiserver.key"), key, 0o600)
    paths.write_file(_pki("apiserver.crt"), cert, 0o644)

    if _existing("sa.key") and _existing("sa.pub"):
        say('[certs] Using the existing "sa" key')
    else:
        say('[certs] Generating "sa" key and public key')
        sa_key = pki.generate_key("RSA-2048" if algorithm.startswith("RSA") else algorithm)
        paths.write_file(_pki("sa.key"), sa_key, 0o600)
        paths.write_file(_pki("sa.pub"), pki.public_key(sa_key), 0o644)
    return ClusterCA(ca_cert, ca_key)


def write_kubeconfigs(settings: InitSettings, ca: ClusterCA, say: Callable[[str], None]) -> None:
    """admin, super-admin, kubelet, controller-manager and scheduler kubeconfigs."""
    say(f'[kubeconfig] Using kubeconfig folder "{paths.KUBERNETES_DIR}"')
    cluster_server = f"https://{settings.api_endpoint}"
    local_server = "https://" + netinfo.join_host_port(
        settings.advertise_address, settings.bind_port
    )
    specs = [
        ("admin.conf", "kubernetes-admin", [ADMIN_GROUP], cluster_server),
        ("super-admin.conf", "kubernetes-super-admin", [SUPER_ADMIN_GROUP], cluster_server),
        ("controller-manager.conf", "system:kube-controller-manager", [], local_server),
        ("scheduler.conf", "system:kube-scheduler", [], local_server),
    ]
    for filename, user, groups, server in specs:
        say(f'[kubeconfig] Writing "{filename}" kubeconfig file')
        key, cert = pki.issue(
            ca.cert_pem,
            ca.key_pem,
            user,
            groups,
            usage="client",
            days=settings.cert_validity_days,
            algorithm=settings.encryption_algorithm,
        )
        config = kubeconfig.build(
            cluster_name=settings.cluster_name,
            server=server,
            ca_pem=ca.cert_pem,
            user=user,
            cert_pem=cert,
            key_pem=key,
        )
        kubeconfig.write(f"{paths.KUBERNETES_DIR}/{filename}", config)

    say('[kubeconfig] Writing "kubelet.conf" kubeconfig file')
    write_kubelet_credentials(
        ca.cert_pem, ca.key_pem, settings.node.name, cluster_server, settings.cert_validity_days
    )


def write_kubelet_client_pem(cert_pem: str, key_pem: str) -> None:
    """Write kubelet-client-current.pem: certificate and key in one file, as kubelet keeps them."""
    paths.host(paths.KUBELET_PKI_DIR).mkdir(parents=True, exist_ok=True)
    paths.write_file(paths.KUBELET_CLIENT_PEM, cert_pem.rstrip("\n") + "\n" + key_pem, 0o600)


def kubelet_kubeconfig(server: str, ca_pem: str) -> dict:
    """The kubelet.conf a bootstrapped kubelet has (credentials in kubelet-client-current.pem)."""
    return kubeconfig.build(
        cluster_name="default-cluster",
        server=server,
        ca_pem=ca_pem,
        user="default-auth",
        cert_file=paths.KUBELET_CLIENT_PEM,
        key_file=paths.KUBELET_CLIENT_PEM,
        context="default-context",
    )


def write_kubelet_credentials(
    ca_cert: str, ca_key: str, node_name: str, server: str, days: int
) -> None:
    key, cert = pki.issue(
        ca_cert,
        ca_key,
        f"system:node:{node_name}",
        ["system:nodes"],
        usage="client",
        days=days,
        algorithm="ECDSA-P256",
    )
    write_kubelet_client_pem(cert, key)
    kubeconfig.write(paths.KUBELET_CONF, kubelet_kubeconfig(server, ca_cert))
