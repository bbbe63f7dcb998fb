"""Request-field validation for the 13 Prime endpoints (types, enums, required, extras)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from primeapi.sandbox.state import invalid

# JSON integers of the API are int64 on Kraken's side.
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Field:
    """One request field: ``kind`` is ``string``, ``integer`` or ``string_list``."""

    kind: str
    required: bool = False
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class RequestSpec:
    """Fields of one endpoint's body; ``strict`` mirrors ``additionalProperties: false``."""

    fields: dict[str, Field] = field(default_factory=dict)
    strict: bool = False


def _from_form(spec: Field, values: list[str]) -> Any:
    """Form bodies carry only strings; coerce them the way Spot does."""
    if spec.kind == "string_list":
        return list(values)
    if len(values) != 1:
        return values  # a repeated scalar is invalid; the type check below refuses it
    value = values[0]
    if spec.kind == "integer" and value.isascii() and value.isdigit():
        return int(value)
    return value


def _check(name: str, spec: Field, value: Any) -> Any:
    if value is None:
        if spec.nullable:
            return None
        raise invalid(f"Invalid {name}")
    if spec.kind == "string":
        if not isinstance(value, str):
            raise invalid(f"Invalid {name}")
        if spec.choices is not None and value not in spec.choices:
            raise invalid(f"Invalid {name}")
        return value
    if spec.kind == "integer":
        # bool is an int subclass in Python but not an integer in JSON.
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(f"Invalid {name}")
        low = 0 if spec.minimum is None else spec.minimum
        high = INT64_MAX if spec.maximum is None else spec.maximum
        if not low <= value <= high:
            raise invalid(f"Invalid {name}")
        return value
    if spec.kind == "string_list":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid(f"Invalid {name}")
        if spec.choices is not None and any(item not in spec.choices for item in value):
            raise invalid(f"Invalid {name}")
        return value
    raise AssertionError(f"unknown field kind {spec.kind}")


def validate(spec: RequestSpec, params: dict[str, Any], *, form: bool) -> dict[str, Any]:
    """Return the declared fields of ``params`` (nonce excluded) or raise Invalid arguments."""
    if spec.strict:
        extra = sorted(set(params) - set(spec.fields) - {"nonce"})
        if extra:
            raise invalid(f"Unexpected field {extra[0]}")
    clean: dict[str, Any] = {}
    for name, field_spec in spec.fields.items():
        if name not in params:
            if field_spec.required:
                raise invalid(f"Missing {name}")
            continue
        value = _from_form(field_spec, params[name]) if form else params[name]
        clean[name] = _check(name, field_spec, value)
    return clean
