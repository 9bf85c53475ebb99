"""Field schemas of kubeadm.k8s.io/v1beta4 documents, for strict decoding.

Every field real kubeadm v1beta4 knows is listed, so realistic configs pass; anything else is an
error naming its path (`unknown field "foo" in ClusterConfiguration.networking`). The
KubeletConfiguration and KubeProxyConfiguration are checked at their top level only.
"""

from __future__ import annotations

import re
from typing import Any

_DURATION_RE = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$|^0$")


class Schema:
    """Checks one value; appends messages to errors; returns the value."""

    def check(self, value: Any, path: str, errors: list[str]) -> Any:
        raise NotImplementedError


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if value is True:
        return "true"
    if value is False:
        return "false"
    return repr(value)


class Str(Schema):
    def check(self, value: Any, path: str, errors: list[str]) -> Any:
        if value is None or isinstance(value, str):
            return value
        errors.append(f"{path}: Invalid value: {_show(value)}: expected a string")
        return value


class Int(Schema):
    def check(self, value: Any, path: str, errors: list[str]) -> Any:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        errors.append(f"{path}: Invalid value: {_show(value)}: expected an integer")
        return value


class Bool(Schema):
    def check(self, value: Any, path: str, errors: list[str]) -> Any:
        if value is None or isinstance(value, bool):
            return value
        errors.append(f"{path}: Invalid value: {_show(value)}: expected true or false")
        return value


class Duration(Schema):
    """A Go time.Duration string such as 24h0m0s, 15m or 40s."""

    def check(self, value: Any, path: str, errors: list[str]) -> Any:
        if value is None:
            return value
        if not isinstance(value, str) or not _DURATION_RE.match(value):
            errors.append(f'{path}: Invalid value: {_show(value)}: expected a duration like "24h"')
        return value


class AnyValue(Schema):
    def check(self, value: Any, path: str, errors: list[str]) -> Any:
        return value


class List(Schema):
    def __init__(self, item: Schema) -> None:
        self.item = item

    def check(self, value: Any, path: str, errors: list[str]) -> Any:
        if value is None:
            return value
        if not isinstance(value, list):
            errors.append(f"{path}: Invalid value: {_show(value)}: expected a list")
            return value
        return [self.item.check(v, f"{path}[{i}]", errors) for i, v in enumerate(value)]


class MapOf(Schema):
    def __init__(self, item: Schema) -> None:
        self.item = item

    def check(self, value: Any, path: str, errors: list[str]) -> Any:
        if value is None:
            return value
        if not isinstance(value, dict):
            errors.append(f"{path}: Invalid value: {_show(value)}: expected a mapping")
            return value
        return {k: self.item.check(v, f"{path}.{k}", errors) for k, v in value.items()}


class Obj(Schema):
    """A struct: only the listed fields are allowed (None = field accepts anything)."""

    def __init__(self, fields: dict[str, Schema], open_fields: bool = False) -> None:
        self.fields = fields
        self.open_fields = open_fields

    def extend(self, more: dict[str, Schema]) -> Obj:
        return Obj({**self.fields, **more}, self.open_fields)

    def check(self, value: Any, path: str, errors: list[str]) -> Any:
        if value is None:
            return value
        if not isinstance(value, dict):
            errors.append(f"{path}: Invalid value: {_show(value)}: expected a mapping")
            return value
        for key, item in value.items():
            spec = self.fields.get(key)
            if spec is None:
                if not self.open_fields:
                    errors.append(f'unknown field "{key}" in {path}')
                continue
            spec.check(item, f"{path}.{key}", errors)
        return value


STR = Str()
INT = Int()
BOOL = Bool()
DURATION = Duration()
ANY = AnyValue()
STRS = List(STR)

ARG = Obj({"name": STR, "value": STR})
ARGS = List(ARG)
ENV_VAR = Obj({"name": STR, "value": STR, "valueFrom": ANY})
HOST_PATH_MOUNT = Obj(
    {"name": STR, "hostPath": STR, "mountPath": STR, "readOnly": BOOL, "pathType": STR}
)
TAINT = Obj({"key": STR, "value": STR, "effect": STR, "timeAdded": STR})
NODE_REGISTRATION = Obj(
    {
        "name": STR,
        "criSocket": STR,
        "taints": List(TAINT),
        "kubeletExtraArgs": ARGS,
        "ignorePreflightErrors": STRS,
        "imagePullPolicy": STR,
        "imagePullSerial": BOOL,
    }
)
API_ENDPOINT = Obj({"advertiseAddress": STR, "bindPort": INT})
BOOTSTRAP_TOKEN = Obj(
    {
        "token": STR,
        "description": STR,
        "ttl": DURATION,
        "expires": STR,
        "usages": STRS,
        "groups": STRS,
    }
)
PATCHES = Obj({"directory": STR})
TIMEOUTS = Obj(
    {
        "controlPlaneComponentHealthCheck": DURATION,
        "kubeletHealthCheck": DURATION,
        "kubernetesAPICall": DURATION,
        "etcdAPICall": DURATION,
        "tlsBootstrap": DURATION,
        "discovery": DURATION,
        "upgradeManifests": DURATION,
    }
)
CONTROL_PLANE_COMPONENT = Obj(
    {"extraArgs": ARGS, "extraVolumes": List(HOST_PATH_MOUNT), "extraEnvs": List(ENV_VAR)}
)
_TYPE_META = {"apiVersion": STR, "kind": STR}

INIT_CONFIGURATION = Obj(
    {
        **_TYPE_META,
        "bootstrapTokens": List(BOOTSTRAP_TOKEN),
        "dryRun": BOOL,
        "nodeRegistration": NODE_REGISTRATION,
        "localAPIEndpoint": API_ENDPOINT,
        "certificateKey": STR,
        "skipPhases": STRS,
        "patches": PATCHES,
        "timeouts": TIMEOUTS,
    }
)

CLUSTER_CONFIGURATION = Obj(
    {
        **_TYPE_META,
        "etcd": Obj(
            {
                "local": Obj(
                    {
                        "imageRepository": STR,
                        "imageTag": STR,
                        "dataDir": STR,
                        "extraArgs": ARGS,
                        "extraEnvs": List(ENV_VAR),
                        "serverCertSANs": STRS,
                        "peerCertSANs": STRS,
                    }
                ),
                "external": Obj(
                    {"endpoints": STRS, "caFile": STR, "certFile": STR, "keyFile": STR}
                ),
            }
        ),
        "networking": Obj({"serviceSubnet": STR, "podSubnet": STR, "dnsDomain": STR}),
        "kubernetesVersion": STR,
        "controlPlaneEndpoint": STR,
        "apiServer": CONTROL_PLANE_COMPONENT.extend({"certSANs": STRS}),
        "controllerManager": CONTROL_PLANE_COMPONENT,
        "scheduler": CONTROL_PLANE_COMPONENT,
        "dns": Obj({"imageRepository": STR, "imageTag": STR, "disabled": BOOL}),
        "proxy": Obj({"disabled": BOOL}),
        "certificatesDir": STR,
        "imageRepository": STR,
        "featureGates": MapOf(BOOL),
        "clusterName": STR,
        "encryptionAlgorithm": STR,
        "certificateValidityPeriod": DURATION,
        "caCertificateValidityPeriod": DURATION,
    }
)

JOIN_CONFIGURATION = Obj(
    {
        **_TYPE_META,
        "dryRun": BOOL,
        "nodeRegistration": NODE_REGISTRATION,
        "caCertPath": STR,
        "discovery": Obj(
            {
                "bootstrapToken": Obj(
                    {
                        "token": STR,
                        "apiServerEndpoint": STR,
                        "caCertHashes": STRS,
                        "unsafeSkipCAVerification": BOOL,
                    }
                ),
                "file": Obj({"kubeConfigPath": STR}),
                "tlsBootstrapToken": STR,
            }
        ),
        "controlPlane": Obj({"localAPIEndpoint": API_ENDPOINT, "certificateKey": STR}),
        "skipPhases": STRS,
        "patches": PATCHES,
        "timeouts": TIMEOUTS,
    }
)

RESET_CONFIGURATION = Obj(
    {
        **_TYPE_META,
        "cleanupTmpDir": BOOL,
        "certificatesDir": STR,
        "criSocket": STR,
        "dryRun": BOOL,
        "force": BOOL,
        "ignorePreflightErrors": STRS,
        "skipPhases": STRS,
        "unmountFlags": STRS,
        "timeouts": TIMEOUTS,
    }
)

UPGRADE_CONFIGURATION = Obj({**_TYPE_META}, open_fields=True)

KUBELET_CONFIGURATION_FIELDS = [
    "enableServer",
    "staticPodPath",
    "podLogsDir",
    "syncFrequency",
    "fileCheckFrequency",
    "httpCheckFrequency",
    "staticPodURL",
    "staticPodURLHeader",
    "address",
    "port",
    "readOnlyPort",
    "tlsCertFile",
    "tlsPrivateKeyFile",
    "tlsCipherSuites",
    "tlsMinVersion",
    "rotateCertificates",
    "serverTLSBootstrap",
    "authentication",
    "authorization",
    "registryPullQPS",
    "registryBurst",
    "imagePullCredentialsVerificationPolicy",
    "preloadedImagesVerificationAllowlist",
    "eventRecordQPS",
    "eventBurst",
    "enableDebuggingHandlers",
    "enableContentionProfiling",
    "healthzPort",
    "healthzBindAddress",
    "oomScoreAdj",
    "clusterDomain",
    "clusterDNS",
    "streamingConnectionIdleTimeout",
    "nodeStatusUpdateFrequency",
    "nodeStatusReportFrequency",
    "nodeLeaseDurationSeconds",
    "imageMinimumGCAge",
    "imageMaximumGCAge",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "volumeStatsAggPeriod",
    "kubeletCgroups",
    "systemCgroups",
    "cgroupRoot",
    "cgroupsPerQOS",
    "cgroupDriver",
    "cpuManagerPolicy",
    "singleProcessOOMKill",
    "cpuManagerPolicyOptions",
    "cpuManagerReconcilePeriod",
    "memoryManagerPolicy",
    "topologyManagerPolicy",
    "topologyManagerScope",
    "topologyManagerPolicyOptions",
    "qosReserved",
    "runtimeRequestTimeout",
    "hairpinMode",
    "maxPods",
    "podCIDR",
    "podPidsLimit",
    "resolvConf",
    "runOnce",
    "cpuCFSQuota",
    "cpuCFSQuotaPeriod",
    "nodeStatusMaxImages",
    "maxOpenFiles",
    "contentType",
    "kubeAPIQPS",
    "kubeAPIBurst",
    "serializeImagePulls",
    "maxParallelImagePulls",
    "evictionHard",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "evictionPressureTransitionPeriod",
    "evictionMaxPodGracePeriod",
    "evictionMinimumReclaim",
    "mergeDefaultEvictionSettings",
    "podsPerCore",
    "enableControllerAttachDetach",
    "protectKernelDefaults",
    "makeIPTablesUtilChains",
    "iptablesMasqueradeBit",
    "iptablesDropBit",
    "featureGates",
    "failSwapOn",
    "memorySwap",
    "containerLogMaxSize",
    "containerLogMaxFiles",
    "containerLogMaxWorkers",
    "containerLogMonitorInterval",
    "configMapAndSecretChangeDetectionStrategy",
    "systemReserved",
    "kubeReserved",
    "reservedSystemCPUs",
    "showHiddenMetricsForVersion",
    "systemReservedCgroup",
    "kubeReservedCgroup",
    "enforceNodeAllocatable",
    "allowedUnsafeSysctls",
    "volumePluginDir",
    "providerID",
    "kernelMemcgNotification",
    "logging",
    "enableSystemLogHandler",
    "enableSystemLogQuery",
    "shutdownGracePeriod",
    "shutdownGracePeriodCriticalPods",
    "shutdownGracePeriodByPodPriority",
    "crashLoopBackOff",
    "reservedMemory",
    "enableProfilingHandler",
    "enableDebugFlagsHandler",
    "seccompDefault",
    "memoryThrottlingFactor",
    "registerWithTaints",
    "registerNode",
    "tracing",
    "localStorageCapacityIsolation",
    "containerRuntimeEndpoint",
    "imageServiceEndpoint",
    "failCgroupV1",
    "userNamespaces",
]

KUBELET_CONFIGURATION = Obj(
    {
        **_TYPE_META,
        **{name: ANY for name in KUBELET_CONFIGURATION_FIELDS},
        "healthzPort": INT,
        "maxPods": INT,
        "clusterDNS": STRS,
        "clusterDomain": STR,
        "cgroupDriver": STR,
        "registerWithTaints": List(TAINT),
        "failSwapOn": BOOL,
    }
)

KUBE_PROXY_CONFIGURATION = Obj({**_TYPE_META}, open_fields=True)

KUBEADM_GROUP = "kubeadm.k8s.io"
KUBEADM_API = "kubeadm.k8s.io/v1beta4"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
KUBE_PROXY_API = "kubeproxy.config.k8s.io/v1alpha1"

KINDS: dict[tuple[str, str], Obj] = {
    (KUBEADM_API, "InitConfiguration"): INIT_CONFIGURATION,
    (KUBEADM_API, "ClusterConfiguration"): CLUSTER_CONFIGURATION,
    (KUBEADM_API, "JoinConfiguration"): JOIN_CONFIGURATION,
    (KUBEADM_API, "ResetConfiguration"): RESET_CONFIGURATION,
    (KUBEADM_API, "UpgradeConfiguration"): UPGRADE_CONFIGURATION,
    (KUBELET_API, "KubeletConfiguration"): KUBELET_CONFIGURATION,
    (KUBE_PROXY_API, "KubeProxyConfiguration"): KUBE_PROXY_CONFIGURATION,
}
