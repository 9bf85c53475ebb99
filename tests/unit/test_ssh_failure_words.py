"""ssh.failure_words: what each way an SSH connection fails is called in check_cluster and in
errors. (tests/hosts/test_local_provider.py meets each one on a real host.)"""

from __future__ import annotations

import errno

import paramiko
import pytest

from k8s_cluster.ssh import failure_words


def unreachable(code: int) -> paramiko.ssh_exception.NoValidConnectionsError:
    return paramiko.ssh_exception.NoValidConnectionsError(
        {("10.0.0.9", 22): OSError(code, "kernel words")}
    )


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (TimeoutError("timed out"), "timed out"),
        (paramiko.SSHException("Error reading SSH protocol banner"), "timed out"),
        (paramiko.SSHException("No existing session"), "timed out"),
        (unreachable(errno.ECONNREFUSED), "connection refused"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connection refused"),
        (unreachable(errno.EHOSTUNREACH), "no route to host"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "no route to host"),
        (paramiko.AuthenticationException("Authentication failed."), "authentication refused"),
        (
            paramiko.BadAuthenticationType("Bad authentication type", ["password"]),
            "authentication refused",
        ),
        (paramiko.SSHException("something else entirely"), "something else entirely"),
    ],
)
def test_each_failure_has_its_plain_words(error, words):
    assert failure_words(error) == words


def test_a_host_key_mismatch_is_named_as_such():
    got, expected = paramiko.RSAKey.generate(1024), paramiko.RSAKey.generate(1024)
    assert failure_words(paramiko.BadHostKeyException("h", got, expected)) == "host key mismatch"
