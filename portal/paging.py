"""One keyset paginator for every list: no COUNT(*), no OFFSET, one query per page.

A list names its order (unique, e.g. ``("name", "pk")``), the query parameters of its two
directions and the labels of its links. A position is an opaque cursor: a lone integer key
is its own cursor (``?older=1234``); a composite key is base64 of its values as JSON.
A cursor is decoded strictly: whatever a person types into the address bar (bad base64, a
lone surrogate, a year past 9999, an integer past 64 bits) is not a position, and the list
shows its first page rather than failing.

The page's links are built by ``{% querystring %}`` in ``templates/_pager.html``, from the
request's own query so every filter is kept.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

M = TypeVar("M", bound=models.Model)

MAX_CURSOR = 400
# Every integer column the portal pages by is a signed 64-bit integer at most.
_INT_LIMIT = 2**63


@dataclass(frozen=True)
class Keyset:
    """How one list is ordered and paged: its order, parameters and link labels."""

    order: tuple[str, ...]
    forward: str = "after"
    backward: str = "before"
    labels: tuple[str, str, str] = ("First", "Previous", "Next")
    per_page: int = 50

    def page(
        self, queryset: QuerySet[M], *, after: str | None = None, before: str | None = None
    ) -> KeysetPage[M]:
        """The page after (or before) a cursor; a cursor that is not one of ours is ignored."""
        model = queryset.model
        after_pos = self.decode(model, after)
        before_pos = self.decode(model, before)
        size = self.per_page
        if before_pos is not None:
            reverse = [_flip(name) for name in self.order]
            nearer = queryset.filter(self._beyond(before_pos, back=True))
            found = list(nearer.order_by(*reverse)[: size + 1])
            rows = list(reversed(found[:size]))
            has_next, has_prev = True, len(found) > size
        else:
            if after_pos is not None:
                queryset = queryset.filter(self._beyond(after_pos, back=False))
            found = list(queryset.order_by(*self.order)[: size + 1])
            rows = found[:size]
            has_next, has_prev = len(found) > size, after_pos is not None
        return KeysetPage(
            rows=rows,
            next_cursor=self.encode(rows[-1]) if has_next and rows else None,
            prev_cursor=self.encode(rows[0]) if has_prev and rows else None,
            keyset=self,
        )

    # Cursors ----------------------------------------------------------------------------

    def encode(self, row: models.Model) -> str:
        """The opaque position of a row in this order."""
        values = [getattr(row, _field_name(name)) for name in self.order]
        if len(values) == 1 and isinstance(values[0], int):
            return str(values[0])
        # Times in full (DjangoJSONEncoder would cut them to milliseconds and lose the place).
        plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
        raw = json.dumps(plain, ensure_ascii=False).encode("utf-8")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def decode(self, model: type[models.Model], cursor: str | None) -> tuple[Any, ...] | None:
        """The position a cursor points at, or None for anything that is not a cursor."""
        if not cursor or len(cursor) > MAX_CURSOR:
            return None
        fields = [_model_field(model, name) for name in self.order]
        if len(fields) == 1 and isinstance(fields[0], models.IntegerField):
            values: Any = [cursor]
            if not cursor.isascii() or not cursor.isdigit():
                return None
        else:
            try:
                raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
                values = json.loads(raw.decode("utf-8"))
            except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
                return None
        if not isinstance(values, list) or len(values) != len(fields):
            return None
        position = []
        for field, value in zip(fields, values, strict=True):
            parsed = _parse(field, value)
            if parsed is None:
                return None
            position.append(parsed)
        return tuple(position)

    def _beyond(self, position: tuple[Any, ...], *, back: bool) -> Q:
        """Rows strictly after `position` in this order (before it when `back`)."""
        condition = Q()
        for i, name in enumerate(self.order):
            descending = name.startswith("-") != back
            field = _field_name(name)
            step = Q(**{f"{field}__{'lt' if descending else 'gt'}": position[i]})
            for earlier, value in zip(self.order[:i], position[:i], strict=True):
                step &= Q(**{_field_name(earlier): value})
            condition |= step
        return condition


@dataclass(frozen=True)
class PagerLink:
    """One link of a pager: first, previous or next, its label and the query it goes to."""

    kind: str
    label: str
    query: QueryDict


@dataclass(frozen=True)
class KeysetPage(Generic[M]):
    """One page of rows, with cursors for the next and previous pages (None at the ends)."""

    rows: list[M]
    next_cursor: str | None
    prev_cursor: str | None
    keyset: Keyset

    def links(self, query: QueryDict) -> list[PagerLink]:
        """First, previous and next, each keeping the other parameters of `query`."""
        keyset = self.keyset
        first_label, prev_label, next_label = keyset.labels
        base = query.copy()
        base.pop(keyset.forward, None)
        base.pop(keyset.backward, None)
        links = []
        if self.prev_cursor:
            links.append(PagerLink("first", first_label, base))
            previous = base.copy()
            previous[keyset.backward] = self.prev_cursor
            links.append(PagerLink("previous", prev_label, previous))
        if self.next_cursor:
            following = base.copy()
            following[keyset.forward] = self.next_cursor
            links.append(PagerLink("next", next_label, following))
        return links


def _flip(name: str) -> str:
    return name[1:] if name.startswith("-") else f"-{name}"


def _field_name(name: str) -> str:
    return name.lstrip("-")


def _model_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    field_name = _field_name(name)
    if field_name == "pk":
        pk = model._meta.pk
        assert pk is not None
        return pk
    try:
        field = model._meta.get_field(field_name)
    except FieldDoesNotExist as exc:  # a programming error, not bad input
        raise ValueError(f"{model.__name__} has no field {field_name!r} to page by") from exc
    assert isinstance(field, models.Field)
    return field


def _parse(field: models.Field[Any, Any], value: Any) -> Any:
    """The value as the column holds it, or None when no row could be there."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(field, models.IntegerField):
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
            value = int(value)
        if not isinstance(value, int) or not -_INT_LIMIT < value < _INT_LIMIT:
            return None
        return value
    if isinstance(field, models.DateTimeField):
        if not isinstance(value, str):
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if timezone.is_aware(moment) else None
    if isinstance(field, models.CharField | models.TextField):
        if not isinstance(value, str) or "\x00" in value:
            return None
        try:
            value.encode("utf-8")  # a lone surrogate cannot be sent to the database
        except UnicodeEncodeError:
            return None
        return value
    return None
