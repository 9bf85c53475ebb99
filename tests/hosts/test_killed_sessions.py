"""The test bed removes what a killed test session left on this machine, and only that: a
session still running keeps its hosts. (A leftover bridge holds its subnet, and the next session
on the same subnet could not create a single host.)"""

from __future__ import annotations

import os

import pytest

from k8s_cluster.hosts import lxc_network
from tests import testbed

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bridges need root")

SUBNET = "10.78.250.0/28"


def _leave_a_network(session: str, sessions) -> lxc_network.Network:
    state_dir = sessions / session / "cfy0" / "state" / "left"
    state_dir.mkdir(parents=True)
    network = lxc_network.Network(str(state_dir), lxc_network.parse_subnet(SUBNET))
    lxc_network.ensure_network(network)
    return network


def test_the_network_of_a_killed_session_is_removed_and_a_live_ones_kept(tmp_path):
    sessions = tmp_path / "pytest-of-someone"
    this_session = sessions / "pytest-3"
    this_session.mkdir(parents=True)
    killed = _leave_a_network("pytest-1", sessions)
    try:
        alive = sessions / "pytest-2"
        alive.mkdir()
        with testbed.hold_session(alive):
            assert testbed.remove_hosts_of_ended_sessions(this_session) == [killed.identity]
            assert not lxc_network.link_exists(killed.bridge)
            assert lxc_network.rules(killed, "nat") == []
            kept = _leave_a_network("pytest-2", sessions)
            try:
                assert testbed.remove_hosts_of_ended_sessions(this_session) == []
                assert lxc_network.link_exists(kept.bridge)
            finally:
                lxc_network.remove_network(kept)
    finally:
        lxc_network.remove_network(killed)
