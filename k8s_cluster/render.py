"""Render the suite's Jinja2 templates (templates/) into host configuration files."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jinja2

from .paths import resource_dir


def _to_json(value: Any) -> str:
    """Quote a value for YAML (JSON is YAML); a missing value fails as undefined, by name."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    return json.dumps(value)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined,  # a missing value is an error, never an empty string
        autoescape=False,
        keep_trailing_newline=True,
    )
    environment.filters["tojson"] = _to_json
    return environment


def render(template: str, **values: Any) -> str:
    return _environment().get_template(template).render(**values)


def render_text(source: str, **values: Any) -> str:
    """Render a template given as text (one shipped outside templates/), with the same rules."""
    return _environment().from_string(source).render(**values)
