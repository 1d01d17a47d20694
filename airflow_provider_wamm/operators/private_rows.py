"""A template field for private rows (recipients): rendered as usual, stored and shown only as a count.

Airflow stores every rendered template field in its metadata database and shows it in the UI ("Rendered
Template"); recipient rows (phone numbers, names) must not end up there. Rendering, of plain and of
mapped tasks alike, reads each template field with ``getattr``, renders the value and writes the result
back with ``setattr``; Airflow then stores what the attribute reads. :class:`PrivateRowsField` is a
descriptor over that public contract:

* the first value assigned (the operator's argument, in ``__init__``) reads back unchanged, so it is
  rendered as usual: an XComArg is resolved, Jinja in a literal list is rendered, values of a mapped
  ``expand`` are left alone;
* a later assignment of rows (the rendered value) parks them aside, and the field reads as
  ``"<3 recipients: not shown>"`` from then on; :meth:`PrivateRowsField.rows` gives the rows back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sized
from typing import Any, Self, overload


def is_rows(value: Any) -> bool:
    """Whether ``value`` is a rendered collection of rows (not text, a mapping or a value to resolve)."""
    if value is None or isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return False
    return not callable(getattr(value, "resolve", None))  # an XComArg resolves when rendered


def rows_placeholder(rows: Any) -> str:
    """What the field reads as in place of ``rows``: ``"<3 recipients: not shown>"``."""
    count = f"{len(rows)} recipients" if isinstance(rows, Sized) else "recipients"
    return f"<{count}: not shown>"


class PrivateRowsField:
    """A descriptor for a template field whose rendered rows are kept out of Airflow's rendered fields.

    Declare it on the operator class (``recipients = PrivateRowsField()``), assign the argument once in
    ``__init__`` and read the rows to process with :meth:`rows`. Values that are not rows (``None``, a
    string, a mapping) are stored as they are, for the operator to explain what is wrong with them.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self._argument_key = f"_{name}_argument"
        self._rows_key = f"_{name}_rows"

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Self: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> Any: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        state = vars(instance)
        rows = state.get(self._rows_key)
        if rows is not None:
            return rows_placeholder(rows)
        return state.get(self._argument_key)

    def __set__(self, instance: object, value: Any) -> None:
        state = vars(instance)
        if self._argument_key not in state:  # the argument the operator was built with: not rendered yet
            state[self._argument_key] = value
            state[self._rows_key] = None
            return
        rows = state[self._rows_key]
        if rows is not None and isinstance(value, str) and value == rows_placeholder(rows):
            return  # the count itself, rendered once more: the rows stay parked
        if is_rows(value):
            state[self._rows_key] = value
        else:
            state[self._rows_key] = None
            state[self._argument_key] = value

    def rows(self, instance: object) -> Any:
        """The rendered rows of ``instance``, or its argument as given when it was not rendered."""
        state = vars(instance)
        rows = state.get(self._rows_key)
        return rows if rows is not None else state.get(self._argument_key)


__all__ = ["PrivateRowsField", "is_rows", "rows_placeholder"]
