"""Cloudify plugin that provisions kubeadm Kubernetes clusters on machines and keeps them healthy."""
