"""A JSON field stored as canonical JSON text, so the stored bytes are exactly what is hashed."""

from __future__ import annotations

import json
from typing import Any

from django.db import models

from portal.audit.chain import json_text


class CanonicalJSONField(models.TextField):
    """Holds any JSON value; the column is text in one canonical form (sorted keys, compact).

    Why not `JSONField`: PostgreSQL's `jsonb` re-orders keys and re-formats numbers,
    so the hash would have to be recomputed from a re-serialisation on every
    verification.  Storing the canonical text keeps verification a plain hash over
    the stored bytes (fast, and immune to driver or `jsonb` formatting changes).
    Only `isnull` and exact lookups make sense on it.
    """

    description = "JSON stored as canonical text"

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return json_text(value)

    def from_db_value(self, value: str | None, expression: object, connection: object) -> Any:
        if value is None:
            return None
        return json.loads(value)

    def to_python(self, value: Any) -> Any:
        return value

    def value_to_string(self, obj: models.Model) -> str:
        return self.get_prep_value(self.value_from_object(obj)) or ""
