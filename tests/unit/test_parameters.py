"""List parameters of the suite's workflows, in every form a user types them."""

from __future__ import annotations

import pytest

from k8s_cluster.workflows.parameters import ParameterError, name_list


@pytest.mark.parametrize(
    "given",
    [
        ["worker_host_a", "worker_host_b"],
        ("worker_host_a", "worker_host_b"),
        "[worker_host_a, worker_host_b]",  # YAML flow list, as cfy -p key=[a, b] passes it
        '["worker_host_a", "worker_host_b"]',  # JSON
        "worker_host_a,worker_host_b",
        " worker_host_a , worker_host_b ,",
        "[worker_host_a, worker_host_b, worker_host_a]",  # a name once
    ],
)
def test_every_form_gives_the_same_names(given) -> None:
    assert name_list("include_instances", given) == ["worker_host_a", "worker_host_b"]


@pytest.mark.parametrize(
    ("given", "names"),
    [("worker_host_a", ["worker_host_a"]), ("", []), (None, []), ([], []), ("[]", [])],
)
def test_one_name_and_nothing(given, names) -> None:
    assert name_list("targets", given) == names


def test_a_broken_list_is_refused_naming_the_parameter_and_the_value() -> None:
    with pytest.raises(ParameterError, match=r"^targets: '\[a, b' is not a YAML or JSON list"):
        name_list("targets", "[a, b")


def test_nested_values_are_refused_with_the_value_as_parsed() -> None:
    with pytest.raises(ParameterError) as caught:
        name_list("node_ids", "[app, {x: 1}]")
    assert str(caught.value).startswith(
        "node_ids: '[app, {x: 1}]' (read as ['app', {'x': 1}]) holds {'x': 1}, which is not a name"
    )
