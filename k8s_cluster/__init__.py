"""Cloudify plugin: kubeadm Kubernetes clusters on machines, provisioned and kept healthy."""
