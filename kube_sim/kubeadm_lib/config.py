"""Loading, strict validation and defaulting of kubeadm configuration files."""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from kube_sim.common import netinfo, paths, timeutil, version, yamlsubset
from kube_sim.kubeadm_lib import schema, tokens

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)([-+][0-9A-Za-z.+-]*)?$")
CA_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
ENCRYPTION_ALGORITHMS = ("RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384")
DEFAULT_CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"
DEFAULT_SERVICE_SUBNET = "10.96.0.0/12"
DEFAULT_DNS_DOMAIN = "cluster.local"
DEFAULT_BIND_PORT = 6443
DEFAULT_NODE_MONITOR_GRACE_PERIOD = "40s"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
NODE_CIDR_MASK_V4 = 24
NODE_CIDR_MASK_V6 = 64
DEFAULT_TIMEOUTS = {
    "controlPlaneComponentHealthCheck": 240.0,
    "kubeletHealthCheck": 240.0,
    "kubernetesAPICall": 60.0,
    "etcdAPICall": 120.0,
    "tlsBootstrap": 300.0,
    "discovery": 300.0,
    "upgradeManifests": 300.0,
}


class ConfigError(Exception):
    """The configuration is invalid; args[0] is the list of messages."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(messages)
        self.messages = messages

    def __str__(self) -> str:
        return "\n".join(self.messages)


@dataclass
class NodeRegistration:
    name: str
    cri_socket: str
    taints: list[dict[str, Any]] | None
    kubelet_extra_args: list[tuple[str, str]]
    ignore_preflight_errors: list[str]


@dataclass
class InitSettings:
    node: NodeRegistration
    tokens: list[tokens.BootstrapToken]
    advertise_address: str
    bind_port: int
    kubernetes_version: str
    control_plane_endpoint: str
    cluster_name: str
    pod_subnet: str
    service_subnet: str
    dns_domain: str
    cert_sans: list[str]
    controller_manager_args: dict[str, str]
    encryption_algorithm: str
    cert_validity_days: int
    ca_validity_days: int
    kubelet_config: dict[str, Any]
    cluster_configuration: dict[str, Any]
    timeouts: dict[str, float]
    skip_phases: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def api_endpoint(self) -> str:
        """host:port the cluster is reached at (controlPlaneEndpoint or the advertise address)."""
        if self.control_plane_endpoint:
            host, port = netinfo.split_host_port(self.control_plane_endpoint, self.bind_port)
            return netinfo.join_host_port(host, port)
        return netinfo.join_host_port(self.advertise_address, self.bind_port)

    @property
    def first_service_ip(self) -> str:
        net = ipaddress.ip_network(self.service_subnet.split(",")[0], strict=False)
        return str(net.network_address + 1)

    @property
    def cluster_dns_ip(self) -> str:
        net = ipaddress.ip_network(self.service_subnet.split(",")[0], strict=False)
        return str(net.network_address + 10)


@dataclass
class JoinSettings:
    node: NodeRegistration
    api_server_endpoint: str
    discovery_token: str
    tls_bootstrap_token: str
    ca_cert_hashes: list[str]
    unsafe_skip_ca_verification: bool
    control_plane: bool
    timeouts: dict[str, float]
    skip_phases: list[str]
    warnings: list[str] = field(default_factory=list)


@dataclass
class Documents:
    """The validated documents of one config file, by kind."""

    by_kind: dict[str, dict[str, Any]]
    warnings: list[str]


def read_documents(path: str) -> Documents:
    try:
        text = paths.host(path).read_text()
    except OSError as exc:
        raise ConfigError([f"unable to read config from {path!r}: {exc.strerror}"]) from exc
    return parse_documents(text, path)


def parse_documents(text: str, source: str = "config") -> Documents:
    """Parse and strictly check every document; returns them by kind."""
    try:
        docs = yamlsubset.load_all(text, source)
    except yamlsubset.YAMLError as exc:
        raise ConfigError([f"error converting YAML to JSON: {exc}"]) from exc
    errors: list[str] = []
    warnings: list[str] = []
    by_kind: dict[str, dict[str, Any]] = {}
    for index, doc in enumerate(docs, start=1):
        if not isinstance(doc, dict):
            errors.append(f"document {index}: expected a mapping with apiVersion and kind")
            continue
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if not api_version or not kind:
            errors.append(f"document {index}: Object 'Kind' or 'apiVersion' is missing")
            continue
        spec = schema.KINDS.get((api_version, kind))
        if spec is None:
            group = str(api_version).split("/")[0]
            if group == schema.KUBEADM_GROUP and api_version != schema.KUBEADM_API:
                errors.append(
                    f'unsupported apiVersion "{api_version}" (kind {kind}): this kubeadm reads '
                    f'"{schema.KUBEADM_API}" only; migrate the file with `kubeadm config migrate`'
                )
            else:
                errors.append(f'no kind "{kind}" is registered for version "{api_version}"')
            continue
        if kind in by_kind:
            errors.append(f"found multiple {kind} documents")
            continue
        spec.check(doc, kind, errors)
        by_kind[kind] = doc
    if errors:
        raise ConfigError(errors)
    return Documents(by_kind, warnings)


# -- helpers --------------------------------------------------------------------------------
def _seconds(value: str | None, default: float) -> float:
    return default if value is None else timeutil.parse_duration(value)


def _timeouts(section: dict[str, Any] | None) -> dict[str, float]:
    result = dict(DEFAULT_TIMEOUTS)
    for key, value in (section or {}).items():
        if key in result and value is not None:
            result[key] = timeutil.parse_duration(value)
    return result


def parse_kubernetes_version(text: str) -> tuple[int, int, int]:
    match = VERSION_RE.match(text)
    if not match:
        raise ValueError(f'couldn\'t parse Kubernetes version "{text}"')
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _check_version(value: Any, errors: list[str]) -> str:
    if value in (None, ""):
        errors.append("ClusterConfiguration.kubernetesVersion: Required value")
        return ""
    text = str(value)
    try:
        major, minor, _patch = parse_kubernetes_version(text)
    except ValueError as exc:
        errors.append(f'ClusterConfiguration.kubernetesVersion: Invalid value: "{text}": {exc}')
        return text
    own_major, own_minor, *_ = (int(p) for p in version.kube_version().split("."))
    if (major, minor) < (own_major, own_minor - 1):
        errors.append(
            "this version of kubeadm only supports deploying clusters with the control plane "
            f"version >= {own_major}.{own_minor - 1}.0. Current version: {text}"
        )
    return text if text.startswith("v") else f"v{text}"


def _check_cidrs(value: Any, path: str, errors: list[str], service: bool) -> list[str]:
    nets: list[str] = []
    if value in (None, ""):
        return nets
    for part in str(value).split(","):
        try:
            net = ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            errors.append(f'{path}: Invalid value: "{value}": couldn\'t parse subnet')
            continue
        if "/" not in part:
            errors.append(f'{path}: Invalid value: "{value}": couldn\'t parse subnet')
            continue
        host_bits = net.max_prefixlen - net.prefixlen
        if service and host_bits > 20:
            errors.append(
                f'{path}: Invalid value: "{value}": specified service subnet is too large; '
                f"for {net.max_prefixlen}-bit addresses, the mask must be >= "
                f"{net.max_prefixlen - 20}"
            )
        if not service:
            node_mask = NODE_CIDR_MASK_V4 if net.version == 4 else NODE_CIDR_MASK_V6
            if net.prefixlen > node_mask:
                errors.append(
                    f'{path}: Invalid value: "{value}": the size of pod subnet with mask '
                    f"{net.prefixlen} is smaller than the size of node subnet with mask {node_mask}"
                )
        nets.append(str(net))
    if len(nets) > 2:
        errors.append(f'{path}: Invalid value: "{value}": expected one CIDR or a dual-stack pair')
    return nets


def _node_registration(
    section: dict[str, Any] | None, kind: str, errors: list[str], default_taints: bool
) -> NodeRegistration:
    section = section or {}
    path = f"{kind}.nodeRegistration"
    name = section.get("name") or netinfo.hostname()
    if not DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
        errors.append(
            f'{path}.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist '
            "of lower case alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character"
        )
    taints = section.get("taints")
    if taints is None and default_taints:
        taints = [dict(CONTROL_PLANE_TAINT)]
    for i, taint in enumerate(taints or []):
        if not taint.get("key"):
            errors.append(f"{path}.taints[{i}].key: Required value")
        if taint.get("effect") not in TAINT_EFFECTS:
            errors.append(
                f'{path}.taints[{i}].effect: Unsupported value: "{taint.get("effect")}": '
                f"supported values: {', '.join(repr(e) for e in TAINT_EFFECTS)}"
            )
    args: list[tuple[str, str]] = []
    for i, arg in enumerate(section.get("kubeletExtraArgs") or []):
        if not arg.get("name"):
            errors.append(f"{path}.kubeletExtraArgs[{i}].name: Required value")
            continue
        args.append((str(arg["name"]), "" if arg.get("value") is None else str(arg["value"])))
    cri = section.get("criSocket") or DEFAULT_CRI_SOCKET
    if "://" not in cri:
        cri = f"unix://{cri}"
    return NodeRegistration(
        name=name,
        cri_socket=cri,
        taints=taints,
        kubelet_extra_args=args,
        ignore_preflight_errors=[str(x) for x in section.get("ignorePreflightErrors") or []],
    )


def _bootstrap_tokens(section: list[dict[str, Any]] | None, errors: list[str]) -> list:
    result = []
    entries = section if section else [{}]
    for i, entry in enumerate(entries):
        path = f"InitConfiguration.bootstrapTokens[{i}]"
        token = entry.get("token") or tokens.generate()
        try:
            tokens.split(token)
        except ValueError as exc:
            errors.append(f'{path}.token: Invalid value: "{token}": {exc}')
            continue
        usages = list(entry.get("usages") or tokens.DEFAULT_USAGES)
        for usage in usages:
            if usage not in tokens.VALID_USAGES:
                errors.append(
                    f'{path}.usages: Invalid value: "{usage}": invalid bootstrap token usage '
                    f"string: {usage}, valid usage options: {', '.join(tokens.VALID_USAGES)}"
                )
        groups = list(entry.get("groups") or [tokens.DEFAULT_GROUP])
        for group in groups:
            if not tokens.GROUP_RE.match(group):
                errors.append(
                    f'{path}.groups: Invalid value: "{group}": bootstrap group does not match '
                    f"pattern {tokens.GROUP_RE.pattern!r}"
                )
        expires = None
        if entry.get("expires"):
            try:
                expires = timeutil.parse_time(entry["expires"])
            except ValueError:
                errors.append(f'{path}.expires: Invalid value: "{entry["expires"]}"')
        ttl = _seconds(entry.get("ttl"), tokens.DEFAULT_TTL)
        result.append(
            tokens.BootstrapToken(
                token=token,
                description=entry.get("description") or "",
                ttl=ttl,
                expires=expires,
                usages=usages,
                groups=groups,
            )
        )
    return result


def _args_dict(section: dict[str, Any] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for arg in (section or {}).get("extraArgs") or []:
        if arg.get("name"):
            result[str(arg["name"])] = "" if arg.get("value") is None else str(arg["value"])
    return result


def _days(value: str | None, default_days: int) -> int:
    if not value:
        return default_days
    return max(1, round(timeutil.parse_duration(value) / 86400))


# -- init -----------------------------------------------------------------------------------
def init_settings(docs: Documents) -> InitSettings:
    """Validate an init config (InitConfiguration + ClusterConfiguration + KubeletConfiguration)."""
    errors: list[str] = []
    warnings = list(docs.warnings)
    for kind in ("JoinConfiguration", "ResetConfiguration", "UpgradeConfiguration"):
        if kind in docs.by_kind:
            warnings.append(
                f"[config] WARNING: Ignored configuration document with GroupVersionKind "
                f"{schema.KUBEADM_API}, Kind={kind}"
            )
    init = docs.by_kind.get("InitConfiguration") or {}
    cluster = copy.deepcopy(docs.by_kind.get("ClusterConfiguration") or {})
    kubelet = copy.deepcopy(docs.by_kind.get("KubeletConfiguration") or {})

    node = _node_registration(init.get("nodeRegistration"), "InitConfiguration", errors, True)
    boot_tokens = _bootstrap_tokens(init.get("bootstrapTokens"), errors)

    endpoint = init.get("localAPIEndpoint") or {}
    bind_port = endpoint.get("bindPort") or DEFAULT_BIND_PORT
    if not 0 < bind_port < 65536:
        errors.append(
            f"InitConfiguration.localAPIEndpoint.bindPort: Invalid value: {bind_port}: "
            "must be between 1 and 65535, inclusive"
        )
    advertise = endpoint.get("advertiseAddress") or ""
    if advertise:
        if not netinfo.is_ip(advertise):
            errors.append(
                "InitConfiguration.localAPIEndpoint.advertiseAddress: Invalid value: "
                f'"{advertise}": must be a valid IP address'
            )
    else:
        advertise = netinfo.default_route_address() or ""
        if not advertise:
            errors.append(
                "unable to select an IP from default routes; set "
                "InitConfiguration.localAPIEndpoint.advertiseAddress"
            )

    kube_version = _check_version(cluster.get("kubernetesVersion"), errors)
    networking = cluster.get("networking") or {}
    service_subnet = networking.get("serviceSubnet") or DEFAULT_SERVICE_SUBNET
    pod_subnet = networking.get("podSubnet") or ""
    _check_cidrs(service_subnet, "ClusterConfiguration.networking.serviceSubnet", errors, True)
    _check_cidrs(pod_subnet, "ClusterConfiguration.networking.podSubnet", errors, False)
    dns_domain = networking.get("dnsDomain") or DEFAULT_DNS_DOMAIN
    if not DNS1123_SUBDOMAIN.match(dns_domain):
        errors.append(
            f'ClusterConfiguration.networking.dnsDomain: Invalid value: "{dns_domain}": '
            "must be a valid RFC 1123 subdomain"
        )

    cpe = cluster.get("controlPlaneEndpoint") or ""
    if cpe:
        try:
            host, _port = netinfo.split_host_port(cpe, bind_port)
            if not netinfo.is_ip(host) and not DNS1123_SUBDOMAIN.match(host):
                raise ValueError(host)
        except ValueError:
            errors.append(
                f'ClusterConfiguration.controlPlaneEndpoint: Invalid value: "{cpe}": '
                "must be a valid host or host:port"
            )

    cert_sans = list((cluster.get("apiServer") or {}).get("certSANs") or [])
    for i, san in enumerate(cert_sans):
        if not netinfo.is_ip(san) and not re.match(r"^(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", san):
            errors.append(
                f'ClusterConfiguration.apiServer.certSANs[{i}]: Invalid value: "{san}": '
                "altname is not a valid IP address, DNS label or a DNS label with subdomain "
                "wildcards"
            )

    algorithm = cluster.get("encryptionAlgorithm") or "RSA-2048"
    if algorithm not in ENCRYPTION_ALGORITHMS:
        errors.append(
            f'ClusterConfiguration.encryptionAlgorithm: Unsupported value: "{algorithm}": '
            f"supported values: {', '.join(ENCRYPTION_ALGORITHMS)}"
        )
    cert_dir = cluster.get("certificatesDir") or paths.PKI_DIR
    if cert_dir.rstrip("/") != paths.PKI_DIR:
        errors.append(
            f'ClusterConfiguration.certificatesDir: Unsupported value: "{cert_dir}": kube-sim '
            f"keeps certificates in {paths.PKI_DIR}"
        )
    if (cluster.get("etcd") or {}).get("external"):
        errors.append("ClusterConfiguration.etcd.external: Unsupported value: kube-sim has no etcd")

    cm_args = _args_dict(cluster.get("controllerManager"))
    grace = cm_args.get("node-monitor-grace-period", DEFAULT_NODE_MONITOR_GRACE_PERIOD)
    try:
        timeutil.parse_duration(grace)
    except ValueError:
        errors.append(
            "ClusterConfiguration.controllerManager.extraArgs[node-monitor-grace-period]: "
            f'Invalid value: "{grace}": expected a duration'
        )
    cm_args["node-monitor-grace-period"] = grace

    cluster_name = cluster.get("clusterName") or "kubernetes"
    if errors:
        raise ConfigError(errors)

    defaulted = {
        "apiVersion": schema.KUBEADM_API,
        "kind": "ClusterConfiguration",
        **{k: v for k, v in cluster.items() if k not in ("apiVersion", "kind")},
    }
    defaulted["kubernetesVersion"] = kube_version
    defaulted["clusterName"] = cluster_name
    defaulted["certificatesDir"] = paths.PKI_DIR
    defaulted.setdefault("imageRepository", "registry.k8s.io")
    defaulted["networking"] = {
        "dnsDomain": dns_domain,
        "serviceSubnet": service_subnet,
        **({"podSubnet": pod_subnet} if pod_subnet else {}),
    }
    defaulted.setdefault("encryptionAlgorithm", algorithm)
    if cpe:
        defaulted["controlPlaneEndpoint"] = cpe

    settings = InitSettings(
        node=node,
        tokens=boot_tokens,
        advertise_address=advertise,
        bind_port=bind_port,
        kubernetes_version=kube_version,
        control_plane_endpoint=cpe,
        cluster_name=cluster_name,
        pod_subnet=pod_subnet,
        service_subnet=service_subnet,
        dns_domain=dns_domain,
        cert_sans=cert_sans,
        controller_manager_args=cm_args,
        encryption_algorithm=algorithm,
        cert_validity_days=_days(cluster.get("certificateValidityPeriod"), 365),
        ca_validity_days=_days(cluster.get("caCertificateValidityPeriod"), 3650),
        kubelet_config=kubelet,
        cluster_configuration=defaulted,
        timeouts=_timeouts(init.get("timeouts")),
        skip_phases=[str(p) for p in init.get("skipPhases") or []],
        warnings=warnings,
    )
    own = tuple(int(p) for p in version.kube_version().split(".")[:2])
    wanted = parse_kubernetes_version(kube_version)[:2]
    if wanted > own:
        settings.warnings.append(
            "[preflight] WARNING: Kubernetes version is greater than kubeadm version. Please "
            f"consider to upgrade kubeadm. Kubernetes version: {kube_version}. Kubeadm version: "
            f"{own[0]}.{own[1]}.x"
        )
    return settings


# -- join -----------------------------------------------------------------------------------
def join_settings(docs: Documents) -> JoinSettings:
    errors: list[str] = []
    warnings = list(docs.warnings)
    for kind in ("InitConfiguration", "ClusterConfiguration", "ResetConfiguration"):
        if kind in docs.by_kind:
            warnings.append(
                f"[config] WARNING: Ignored configuration document with GroupVersionKind "
                f"{schema.KUBEADM_API}, Kind={kind}"
            )
    join = docs.by_kind.get("JoinConfiguration")
    if join is None:
        raise ConfigError(["no JoinConfiguration found in the config file"])
    node = _node_registration(join.get("nodeRegistration"), "JoinConfiguration", errors, False)
    discovery = join.get("discovery") or {}
    if discovery.get("file"):
        errors.append(
            "JoinConfiguration.discovery.file: Unsupported value: kube-sim supports "
            "bootstrap-token discovery only"
        )
    boot = discovery.get("bootstrapToken") or {}
    endpoint = boot.get("apiServerEndpoint") or ""
    token = boot.get("token") or ""
    hashes = list(boot.get("caCertHashes") or [])
    unsafe = bool(boot.get("unsafeSkipCAVerification"))
    tls_token = discovery.get("tlsBootstrapToken") or token
    path = "JoinConfiguration.discovery.bootstrapToken"
    if not boot and not discovery.get("file"):
        errors.append(
            'JoinConfiguration.discovery.bootstrapToken: Invalid value: "": bootstrapToken or '
            "file must be set"
        )
    if boot:
        if not token:
            errors.append(f'{path}.token: Invalid value: "": the bootstrap token is required')
        else:
            try:
                tokens.split(token)
            except ValueError as exc:
                errors.append(f'{path}.token: Invalid value: "{token}": {exc}')
        if not endpoint:
            errors.append(f"{path}.apiServerEndpoint: Required value")
        else:
            try:
                netinfo.split_host_port(endpoint)
            except ValueError:
                errors.append(
                    f'{path}.apiServerEndpoint: Invalid value: "{endpoint}": address {endpoint}: '
                    "missing port in address"
                )
        if not hashes and not unsafe:
            errors.append(
                f"{path}.caCertHashes: Invalid value: []: using token-based discovery without "
                "caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm "
                "config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue"
            )
        for i, value in enumerate(hashes):
            if not CA_HASH_RE.match(str(value)):
                errors.append(
                    f'{path}.caCertHashes[{i}]: Invalid value: "{value}": expected '
                    '"sha256:" followed by 64 lower-case hex digits'
                )
    if tls_token and tls_token != token:
        try:
            tokens.split(tls_token)
        except ValueError as exc:
            errors.append(f'JoinConfiguration.discovery.tlsBootstrapToken: Invalid value: "{exc}"')
    control_plane = join.get("controlPlane") is not None
    if errors:
        raise ConfigError(errors)
    return JoinSettings(
        node=node,
        api_server_endpoint=endpoint,
        discovery_token=token,
        tls_bootstrap_token=tls_token,
        ca_cert_hashes=[str(h) for h in hashes],
        unsafe_skip_ca_verification=unsafe,
        control_plane=control_plane,
        timeouts=_timeouts(join.get("timeouts")),
        skip_phases=[str(p) for p in join.get("skipPhases") or []],
        warnings=warnings,
    )


def join_document_from_flags(
    endpoint: str,
    token: str,
    discovery_token: str | None,
    tls_bootstrap_token: str | None,
    ca_hashes: list[str],
    unsafe: bool,
    node_name: str | None,
    cri_socket: str | None,
    control_plane: bool,
) -> dict[str, Any]:
    """The JoinConfiguration the flag form of `kubeadm join` stands for."""
    boot: dict[str, Any] = {
        "apiServerEndpoint": endpoint,
        "token": discovery_token or token,
        "caCertHashes": ca_hashes,
    }
    if unsafe:
        boot["unsafeSkipCAVerification"] = True
    doc: dict[str, Any] = {
        "apiVersion": schema.KUBEADM_API,
        "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": boot},
        "nodeRegistration": {},
    }
    if tls_bootstrap_token or token:
        doc["discovery"]["tlsBootstrapToken"] = tls_bootstrap_token or token
    if node_name:
        doc["nodeRegistration"]["name"] = node_name
    if cri_socket:
        doc["nodeRegistration"]["criSocket"] = cri_socket
    if control_plane:
        doc["controlPlane"] = {}
    return doc


def validate_file(path: str) -> list[str]:
    """`kubeadm config validate`: raise ConfigError, or return warnings."""
    docs = read_documents(path)
    kinds = set(docs.by_kind)
    if "JoinConfiguration" in kinds and not kinds & {"InitConfiguration", "ClusterConfiguration"}:
        return join_settings(docs).warnings
    if not kinds & {"InitConfiguration", "ClusterConfiguration", "JoinConfiguration"}:
        raise ConfigError(["no InitConfiguration, ClusterConfiguration or JoinConfiguration found"])
    return init_settings(docs).warnings
