"""Shared stdlib-only helpers for the kube-sim stand-ins (YAML subset, PKI, kubeconfig, REST)."""
