#!/usr/bin/env bash
# Return a host to a clean state: kubeadm reset, then what kubeadm reset leaves behind (CNI
# configuration, kubeconfigs, the suite's join files) and what the pod network made on the host.
# Idempotent; safe on a host that was never initialised or joined. The machine's own firewall
# rules are left alone.
set -euo pipefail

# Interfaces and state of the pod network (flannel's and the bridge plugin's, kube-proxy's IPVS
# dummy). They must go: a node that joins again gets a new pod CIDR, and a cni0 bridge still
# holding the old one makes every new pod fail ("cni0 already has an IP address different from")
# or, worse, get an address of the old range while flannel routes the new one.
NETWORK_LINKS=(cni0 flannel.1 flannel-v6.1 kube-ipvs0)
NETWORK_STATE=(/var/lib/cni /run/flannel)

if command -v kubeadm >/dev/null 2>&1; then
  kubeadm reset -f --cri-socket unix:///run/containerd/containerd.sock
fi
systemctl stop kubelet 2>/dev/null || true
rm -rf /etc/cni/net.d /etc/kubernetes/kubeadm-*.yaml /root/.kube /var/lib/k8s-cluster/cni
for link in "${NETWORK_LINKS[@]}"; do
  if ip link show "$link" >/dev/null 2>&1; then
    ip link delete "$link"
  fi
done
rm -rf "${NETWORK_STATE[@]}"
echo "reset: done"
