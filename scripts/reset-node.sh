#!/usr/bin/env bash
# Return a host to a clean state: kubeadm reset, then the files kubeadm reset leaves behind
# (CNI configuration, kubeconfigs, the suite's join files). Idempotent; safe on a host that was
# never initialised or joined. The machine's own firewall rules are left alone.
set -euo pipefail

if command -v kubeadm >/dev/null 2>&1; then
  kubeadm reset -f --cri-socket unix:///run/containerd/containerd.sock
fi
systemctl stop kubelet 2>/dev/null || true
rm -rf /etc/cni/net.d /etc/kubernetes/kubeadm-*.yaml /root/.kube /var/lib/k8s-cluster/cni
echo "reset: done"
