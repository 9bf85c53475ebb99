"""Errors kubeadm reports the way the real one does."""

from __future__ import annotations


class KubeadmError(Exception):
    """A failure outside a phase (bad flags, bad config): printed as is, exit 1."""


class PhaseError(KubeadmError):
    """A failure inside a phase: printed as 'error execution phase <phase>: <message>'."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase

    def __str__(self) -> str:
        return f"error execution phase {self.phase}: {self.args[0]}"
