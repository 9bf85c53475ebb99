"""The control plane kubeadm runs: the API server stand-in as a systemd service, and kubelet."""

from __future__ import annotations

import shlex

from kube_sim.common import paths, services, unitfiles
from kube_sim.common.rest import ApiClient, ApiError
from kube_sim.kubeadm_lib.config import InitSettings

APISERVER_SERVICE = "kube-apiserver-sim"
KUBELET_SERVICE = "kubelet"

Manager = services.Systemd | services.Processes


def apiserver_args(settings: InitSettings) -> list[str]:
    """The API server stand-in's command line (paths as seen on the host)."""
    pki = paths.PKI_DIR
    return [
        "--bind",
        "0.0.0.0",
        "--port",
        str(settings.bind_port),
        "--advertise-address",
        settings.advertise_address,
        "--tls-cert-file",
        str(paths.host(f"{pki}/apiserver.crt")),
        "--tls-private-key-file",
        str(paths.host(f"{pki}/apiserver.key")),
        "--client-ca-file",
        str(paths.host(f"{pki}/ca.crt")),
        "--cluster-signing-cert-file",
        str(paths.host(f"{pki}/ca.crt")),
        "--cluster-signing-key-file",
        str(paths.host(f"{pki}/ca.key")),
        "--state-dir",
        str(paths.host(paths.STATE_DIR)),
        "--node-monitor-grace-period",
        settings.controller_manager_args["node-monitor-grace-period"],
        "--service-cluster-ip-range",
        settings.service_subnet,
    ]


def unit_path() -> str:
    return f"{paths.SYSTEMD_DIR}/{paths.APISERVER_UNIT}"


def write_apiserver_unit(settings: InitSettings) -> None:
    paths.write_file(unit_path(), unitfiles.render_apiserver_unit(apiserver_args(settings)))


def _apiserver_args_from_unit() -> list[str]:
    """TEST ONLY: the arguments of the written unit's ExecStart, for the plain-process mode."""
    text = paths.host(unit_path()).read_text()
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            argv = shlex.split(line.removeprefix("ExecStart="))
            return argv[argv.index("kube_sim.apiserver") + 1 :]
    raise services.ServiceError(f"no ExecStart in {unit_path()}")


def service_manager() -> Manager:
    if not services.no_systemd():
        return services.Systemd()
    return services.Processes(
        {
            KUBELET_SERVICE: lambda: services.python_module_command(
                "kube_sim.kubelet", unitfiles.kubelet_argv()
            ),
            APISERVER_SERVICE: lambda: services.apiserver_command(_apiserver_args_from_unit()),
        }
    )


def readyz(server: str, ca_pem: str) -> bool | None:
    """True when /readyz answers ok (None otherwise, for polling)."""
    client = ApiClient(server, ca_pem=ca_pem, timeout=3)
    try:
        text = client.request("GET", "/readyz", raw=True)
    except ApiError:
        return None
    return True if text.strip() == "ok" else None
