"""Rules a request body follows that its fields' types cannot say, written into its JSON
schema too, so the OpenAPI document tells clients and generators the truth.

Each function returns a ``json_schema_extra`` for a model's ``model_config``; the model's
validators (or the handler) still enforce the rule.
"""

from collections.abc import Callable
from typing import Any

SchemaEdit = Callable[[dict[str, Any]], None]


def not_nullable(*fields: str) -> SchemaEdit:
    """These fields may be left out (a PATCH keeps the value) but not set to null."""

    def edit(schema: dict[str, Any]) -> None:
        for name in fields:
            field = schema["properties"][name]
            options = [o for o in field.pop("anyOf", []) if o.get("type") != "null"]
            if len(options) == 1:
                field.update(options[0])
            elif options:
                field["anyOf"] = options
            field.pop("default", None)

    return edit


def required_together(*choices: tuple[str, ...]) -> SchemaEdit:
    """At least one of these groups of fields is given in full (and not null)."""

    def edit(schema: dict[str, Any]) -> None:
        schema["anyOf"] = [_given(group) for group in choices]

    return edit


def exactly_one(*fields: str) -> SchemaEdit:
    """Exactly one of these fields is given (and not null)."""

    def edit(schema: dict[str, Any]) -> None:
        schema["oneOf"] = [_given((name,)) for name in fields]

    return edit


def when(field: str, value: str, then_given: str) -> dict[str, Any]:
    """A subschema: when ``field`` is ``value``, ``then_given`` is given (not null)."""
    return {
        "if": {"properties": {field: {"const": value}}, "required": [field]},
        "then": _given((then_given,)),
    }


def _given(group: tuple[str, ...]) -> dict[str, Any]:
    return {
        "required": list(group),
        "properties": {name: {"not": {"type": "null"}} for name in group},
    }
