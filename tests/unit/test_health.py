"""Health reports: since when a host is unhealthy, and the table check_cluster prints."""

from __future__ import annotations

from k8s_cluster.health import Health, assess, duration, table

NOW = 1_000_000.0


def report(**changes) -> Health:
    fields = dict(
        instance="worker_host_a1",
        host="worker-a1",
        role="worker",
        ssh="ok",
        kubelet="active",
        node_ready="True",
        node_since=NOW - 3600,
        checked_at=NOW,
    )
    return Health(**{**fields, **changes})


def test_a_healthy_host_has_no_unhealthy_since():
    assert report().healthy
    assert (
        assess(report(), {"unhealthy_since": NOW - 50, "checked_at": NOW - 10}).unhealthy_since
        is None
    )


def test_each_failure_makes_a_host_unhealthy():
    assert not report(ssh="timed out", kubelet="unknown").healthy
    assert not report(kubelet="inactive").healthy
    assert not report(node_ready="Unknown").healthy
    assert report(kubelet="inactive").problems() == "kubelet inactive"


def test_unhealthy_since_the_node_turned_not_ready():
    current = report(ssh="timed out", kubelet="unknown", node_ready="Unknown", node_since=NOW - 90)
    assert assess(current, None).unhealthy_since == NOW - 90


def test_unhealthy_since_this_check_when_nothing_says_earlier():
    current = report(ssh="timed out", kubelet="unknown")  # the Node is still Ready
    assert assess(current, None).unhealthy_since == NOW


def test_unhealthy_since_the_first_check_that_saw_it():
    current = report(kubelet="inactive")
    previous = {"unhealthy_since": NOW - 200, "checked_at": NOW - 60}
    assert assess(current, previous).unhealthy_since == NOW - 200


def test_a_node_that_changed_since_the_previous_check_starts_afresh():
    """It recovered and failed again between two checks: the old failure does not count."""
    current = report(node_ready="Unknown", node_since=NOW - 30)
    previous = {"unhealthy_since": NOW - 900, "checked_at": NOW - 600}
    assert assess(current, previous).unhealthy_since == NOW - 30


def test_durations():
    assert [duration(s) for s in (0, 59, 61, 3599, 7260)] == [
        "0s",
        "59s",
        "1m01s",
        "59m59s",
        "2h01m",
    ]


def test_table_has_a_row_per_host_in_aligned_columns():
    sick = assess(report(host="worker-b2", ssh="timed out", kubelet="unknown"), None)
    lines = table([report(), sick], now=NOW + 75).splitlines()
    assert lines[0].split() == [
        "HOST",
        "INSTANCE",
        "ROLE",
        "SSH",
        "KUBELET",
        "NODE",
        "READY",
        "UNHEALTHY",
        "FOR",
    ]
    assert lines[1].split()[:5] == ["worker-a1", "worker_host_a1", "worker", "ok", "active"]
    assert lines[1].endswith("True for 1h01m  -")
    assert lines[2].endswith("1m15s")
    assert lines[0].index("SSH") == lines[1].index("ok") == lines[2].index("timed out")


def test_a_report_survives_its_runtime_property_form():
    assert Health.from_dict(report().to_dict()) == report()
