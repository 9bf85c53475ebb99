"""Workflow parameters as users type them.

`cfy executions start ... -p include_instances=[a,b]` hands the workflow the string "[a,b]";
`-p targets=a,b` the string "a,b"; a JSON or YAML parameters file a real list. Every list
parameter of the suite's workflows accepts all three, and a single name.
"""

from __future__ import annotations

from typing import Any

import yaml

ACCEPTED = "a list of names: [a, b] (YAML or JSON), a,b, or one name"


class ParameterError(ValueError):
    """A parameter that is not what the workflow takes; says what was given, as parsed."""


def name_list(parameter: str, value: Any) -> list[str]:
    """The names a list parameter holds, in order, without duplicates or blanks."""
    if value is None:
        return []
    items = _items(parameter, value)
    names = []
    for item in items:
        if isinstance(item, (dict, list, tuple, set)) or item is None:
            raise ParameterError(
                f"{parameter}: {value!r} (read as {items!r}) holds {item!r}, which is not a "
                f"name; expected {ACCEPTED}"
            )
        name = str(item).strip()
        if name and name not in names:
            names.append(name)
    return names


def _items(parameter: str, value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str):
        return [value]
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ParameterError(
                f"{parameter}: {value!r} is not a YAML or JSON list ({err.problem}); "
                f"expected {ACCEPTED}"
            ) from None
        return list(parsed)
    return text.split(",")
