"""Personalisation: recipient fields -> the template parameters of each message.

Parameter values are strings with Python format fields naming recipient fields (``"{first_name}"``,
``"{discount}% off"``, ``"{price:.2f}"``); a string without fields, and any non-string, is a
constant. A value that is exactly one field (``"{price_milli}"``) keeps the field's own type, so a
number stays a number. ``{{`` and ``}}`` stand for literal braces.

The format strings are parsed once, when the :class:`Personaliser` is built, so rendering a
recipient is a few dictionary lookups; the result goes through the Graph payload builders
(:func:`~airflow_provider_wamm.graph.payload.components_from_spec`), which enforce Meta's limits.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.graph.payload import PayloadError, components_from_spec
from airflow_provider_wamm.graph.recipients import mask_phone
from airflow_provider_wamm.graph.validation import check_component_list

_Renderer = Callable[[Mapping[str, Any]], Any]
_Uses = dict[str, tuple[str, ...]]
"""Recipient field -> the places in the spec that use it (``body_parameters[1]``, ``header.text``)."""
_FORMATTER = string.Formatter()
_BUTTON_KINDS = ("url", "quick_reply", "copy_code", "flow", "catalog")
#: Keys whose values keep the recipient field's own type (numbers, or free JSON for flows).
_TYPED_KEYS = frozenset(
    {
        "amount_1000",
        "latitude",
        "longitude",
        "limited_time_offer_ms",
        "expiration_time_ms",
        "index",
        "card_index",
        "flow_action_data",
    }
)


class PersonalisationError(PayloadError):
    """A recipient row cannot be rendered into parameters (a field is missing or a value is invalid).

    ``field`` is where in the personalisation spec the problem is (``body_parameters[0]``) and
    ``reason`` says what is wrong, naming the recipient field (``missing field 'first_name'``).
    """


class _SampleRow(dict[str, Any]):
    """Marker row: every field gets a plausible placeholder for where it is used."""


_SAMPLE = _SampleRow()
_SAMPLE_VALUES: dict[str, Any] = {
    "link": "https://example.com/sample",
    "amount_1000": 1000,
    "latitude": 0,
    "longitude": 0,
    "code": "EUR",
    "limited_time_offer_ms": 4102444800000,
    "expiration_time_ms": 4102444800000,
    "index": 0,
    "filename": "sample.pdf",
    "catalog_id": "100000000000000",  # a product header's catalogue id is digits
}


def _sample_value(where: str) -> Any:
    key = where.rsplit(".", 1)[-1]
    return _SAMPLE_VALUES.get(key, "sample")


def _lookup(row: Mapping[str, Any], name: str, where: str) -> Any:
    if row is _SAMPLE:
        return _sample_value(where)
    try:
        value = row[name]
    except KeyError:
        lowered = name.lower()
        if lowered != name and lowered in row:  # SQL rows come with lower-cased column names
            value = row[lowered]
        else:
            raise PersonalisationError(where, f"missing field {name!r}") from None
    if value is None:
        raise PersonalisationError(where, f"field {name!r} is empty (null)")
    return value


_Piece = tuple[str, str | None, str, str | None]
"""A parsed part of a format string: literal text, field name, format spec, conversion."""


def _parse_format(text: str, where: str) -> tuple[list[_Piece], frozenset[str]]:
    """Split ``text`` into pieces and the field names it uses; refuse positional and nested fields."""
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise ConfigurationError(f"{where}: invalid format string {text!r}: {exc}") from None
    pieces: list[_Piece] = []
    names: set[str] = set()
    for literal, name, spec, conversion in parts:
        if name is None:
            pieces.append((literal, None, "", None))
            continue
        if not name or name.isdigit():
            raise ConfigurationError(
                f"{where}: {text!r} has a positional field '{{{name}}}'; name the recipient field, "
                "e.g. '{first_name}'"
            )
        if spec and ("{" in spec):
            raise ConfigurationError(f"{where}: nested fields in a format spec are not supported ({text!r})")
        names.add(name)
        pieces.append((literal, name, spec or "", conversion))
    return pieces, frozenset(names)


def _whole_field(name: str, where: str, *, keep_type: bool) -> _Renderer:
    """The renderer of a value that is exactly one field: its own value, or its text."""
    if keep_type:

        def whole(row: Mapping[str, Any]) -> Any:
            return _lookup(row, name, where)

        return whole

    def whole_text(row: Mapping[str, Any]) -> Any:
        value = _lookup(row, name, where)
        return value if isinstance(value, str) else format(value)

    return whole_text


def _formatted(pieces: list[_Piece], where: str) -> _Renderer:
    """The renderer of text mixing literals and formatted fields."""

    def render(row: Mapping[str, Any]) -> str:
        out: list[str] = []
        for literal, name, spec, conversion in pieces:
            if literal:
                out.append(literal)
            if name is None:
                continue
            value = _lookup(row, name, where)
            if conversion is not None:
                value = _FORMATTER.convert_field(value, conversion)
            try:
                out.append(format(value, spec))
            except (ValueError, TypeError) as exc:
                if row is _SAMPLE:
                    out.append("1")
                    continue
                raise PersonalisationError(
                    where, f"field {name!r} cannot be formatted with {spec!r}: {exc}"
                ) from None
        return "".join(out)

    return render


def _merge_uses(parts: Sequence[_Uses]) -> _Uses:
    """The field uses of several spec values together, places in spec order."""
    merged: _Uses = {}
    for uses in parts:
        for name, places in uses.items():
            merged[name] = merged.get(name, ()) + places
    return merged


def _compile_string(text: str, where: str, *, keep_type: bool) -> tuple[_Renderer, _Uses]:
    """Parse ``text`` once; return a renderer and the field names it uses (all at ``where``)."""
    pieces, names = _parse_format(text, where)
    uses: _Uses = {name: (where,) for name in sorted(names)}
    if not names:
        constant = "".join(literal for literal, *_ in pieces)
        return (lambda _row: constant), uses
    if len(pieces) == 1 and not pieces[0][0] and not pieces[0][2] and pieces[0][3] is None:
        only = pieces[0][1]
        assert only is not None
        return _whole_field(only, where, keep_type=keep_type), uses
    return _formatted(pieces, where), uses


def _compile(value: Any, where: str, *, keep_type: bool = False) -> tuple[_Renderer, _Uses]:
    """Compile any spec value (strings, mappings and lists recursively) into a renderer.

    A value that is exactly one field becomes text, except where Meta wants a number (``keep_type``:
    ``amount_1000``, coordinates, timestamps) or free JSON (``flow_action_data``).
    """
    if isinstance(value, str):
        return _compile_string(value, where, keep_type=keep_type)
    if isinstance(value, Mapping):
        items = [
            (key, *_compile(item, f"{where}.{key}", keep_type=keep_type or key in _TYPED_KEYS))
            for key, item in value.items()
        ]
        uses = _merge_uses([u for _k, _r, u in items])
        if not uses:
            return (lambda _row: value), uses
        pairs = [(key, renderer) for key, renderer, _u in items]
        return (lambda row: {key: renderer(row) for key, renderer in pairs}), uses
    if isinstance(value, (list, tuple)):
        compiled = [_compile(item, f"{where}[{i}]", keep_type=keep_type) for i, item in enumerate(value)]
        uses = _merge_uses([u for _r, u in compiled])
        if not uses:
            return (lambda _row: value), uses
        renderers = [renderer for renderer, _u in compiled]
        return (lambda row: [renderer(row) for renderer in renderers]), uses
    return (lambda _row: value), {}


def _check_buttons(buttons: Any) -> None:
    """A list of button mappings, each with a known type and an index."""
    if isinstance(buttons, (str, bytes, Mapping)) or not isinstance(buttons, Sequence):
        raise ConfigurationError("buttons must be a list of button mappings")
    for i, button in enumerate(buttons):
        if not isinstance(button, Mapping):
            raise ConfigurationError(f"buttons[{i}] must be a mapping, got {type(button).__name__}")
        kind = button.get("type", button.get("sub_type"))
        if kind not in (*_BUTTON_KINDS, "button"):
            raise ConfigurationError(f"buttons[{i}].type must be one of {list(_BUTTON_KINDS)}, got {kind!r}")
        if "index" not in button:
            raise ConfigurationError(f"buttons[{i}].index is required (the button's position, 0-9)")


def _check_arguments(
    body_parameters: Any, header: Any, buttons: Any, limited_time_offer_ms: Any, components: Any
) -> None:
    """The shapes of :class:`Personaliser`'s arguments (their contents are checked when compiled)."""
    structured = any(v is not None for v in (body_parameters, header, buttons, limited_time_offer_ms))
    if components is not None and structured:
        raise ConfigurationError(
            "give either components (a raw Meta components list) or body_parameters/header/buttons, not both"
        )
    if body_parameters is not None and (
        isinstance(body_parameters, (str, bytes)) or not isinstance(body_parameters, (Sequence, Mapping))
    ):
        raise ConfigurationError(
            "body_parameters must be a list (positional template) or a mapping (named template), "
            f"got {type(body_parameters).__name__}"
        )
    if header is not None and not isinstance(header, (str, Mapping)):
        raise ConfigurationError(
            f"header must be a mapping such as {{'type': 'text', 'text': '{{city}}'}}, "
            f"got {type(header).__name__}"
        )
    if buttons is not None:
        _check_buttons(buttons)
    if components is not None and (
        isinstance(components, (str, bytes, Mapping)) or not isinstance(components, Sequence)
    ):
        raise ConfigurationError("components must be a list of Meta component mappings")


def _compile_spec(spec: Mapping[str, Any]) -> tuple[dict[str, _Renderer], _Uses]:
    """A renderer per given key of the spec, and every recipient field they use, with where."""
    renderers: dict[str, _Renderer] = {}
    parts: list[_Uses] = []
    for key, value in spec.items():
        if value is None:
            continue
        renderer, used = _compile(value, key, keep_type=key in _TYPED_KEYS)
        renderers[key] = renderer
        parts.append(used)
    return renderers, _merge_uses(parts)


#: A run of at least seven digits, possibly written with a ``+`` and separators: maybe a phone number.
_PHONE_LIKE = re.compile(r"\+?\d(?:[ \-().]{0,2}\d){6,}")


def _digits_only(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def mask_row_numbers(text: str, row: Mapping[str, Any]) -> str:
    """``text`` with every phone-like run of digits that comes from one of ``row``'s values masked.

    Error messages of rendered values may quote them (``got 'https://...'``); a value holding a phone
    number must not carry it into the logs or XCom. Numbers that are not the row's (Meta's limits in
    the message) stay readable.
    """
    if not _PHONE_LIKE.search(text):
        return text
    values = [
        _digits_only(str(v)) for v in row.values() if isinstance(v, (str, int)) and not isinstance(v, bool)
    ]

    def mask(match: re.Match[str]) -> str:
        digits = _digits_only(match.group())
        if any(digits in value for value in values):
            return mask_phone(("+" if match.group().startswith("+") else "") + digits)
        return match.group()

    return _PHONE_LIKE.sub(mask, text)


class Personaliser:
    """Renders the send-time template components of each recipient from their fields.

    :param body_parameters: body parameter values: a list for positional templates
        (``["{first_name}", "{discount}"]``) or a mapping for named ones
        (``{"first_name": "{first_name}"}``). A typed parameter is a dict:
        ``{"type": "currency", "fallback_value": "{price_text}", "code": "EUR",
        "amount_1000": "{price_milli}"}`` or ``{"type": "date_time", "fallback_value": "{date}"}``.
    :param header: the header parameter: ``{"type": "text", "text": "{city}"}`` (or just a string),
        ``{"type": "image", "link": "{image_url}"}``, video, document (``filename``), or
        ``{"type": "location", "latitude": ..., "longitude": ..., "name": ..., "address": ...}``.
    :param buttons: button parameters: ``{"type": "url", "index": 0, "text": "{slug}"}``,
        ``{"type": "quick_reply", "index": 1, "payload": "unsub-{id}"}``,
        ``{"type": "copy_code", "index": 0, "coupon_code": "{coupon}"}``,
        ``{"type": "flow", "index": 0, "flow_token": "...", "flow_action_data": {...}}``, catalog.
    :param limited_time_offer_ms: expiry of a limited-time offer (Unix ms; may be a field).
    :param components: instead of the above, a raw Meta ``components`` list; every string in it is
        formatted with the recipient's fields.
    """

    def __init__(
        self,
        *,
        body_parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | str | None = None,
        buttons: Sequence[Mapping[str, Any]] | None = None,
        limited_time_offer_ms: int | str | None = None,
        components: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        _check_arguments(body_parameters, header, buttons, limited_time_offer_ms, components)
        self._raw = components is not None
        spec: dict[str, Any] = (
            {"components": components}
            if components is not None
            else {
                "body_parameters": body_parameters,
                "header": header,
                "buttons": buttons,
                "limited_time_offer_ms": limited_time_offer_ms,
            }
        )
        self._spec = spec
        renderers, uses = _compile_spec(spec)
        self._renderers = renderers
        self.field_uses: Mapping[str, tuple[str, ...]] = uses
        """Each recipient field the spec refers to, and where (``{"city": ("header.text",)}``)."""
        self.fields: frozenset[str] = frozenset(uses)
        """The recipient fields the spec refers to."""
        self._constant: list[dict[str, Any]] | None = None
        if not self.fields:  # constant spec: check it now rather than once per recipient
            self._constant = self.render({})

    def __repr__(self) -> str:
        return f"Personaliser(fields={sorted(self.fields)!r})"

    @property
    def spec(self) -> dict[str, Any]:
        """The constructor's arguments (those given), e.g. to build a variant that changes one of them."""
        return {k: v for k, v in self._spec.items() if v is not None}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Personaliser:
        """Build from a mapping with the constructor's keyword names (e.g. an operator argument)."""
        allowed = {"body_parameters", "header", "buttons", "limited_time_offer_ms", "components"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ConfigurationError(f"unknown personalisation keys {unknown}; allowed: {sorted(allowed)}")
        return cls(**dict(spec))

    def sample_components(self) -> list[dict[str, Any]]:
        """The components with placeholder values for every field (to check the spec's shape against
        the template before sending, e.g. the number of body parameters and the header kind)."""
        return self.render(_SAMPLE)

    def render(self, row: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The Meta ``components`` list for one recipient.

        :raises PersonalisationError: a field is missing or empty, or a rendered value breaks one of
            Meta's rules (the error names the place in the spec and the field; phone numbers quoted
            from the row's values are masked).
        """
        if self._constant is not None:
            return self._constant
        try:
            return self._render(row)
        except PayloadError as exc:
            reason = exc.reason if row is _SAMPLE else mask_row_numbers(exc.reason, row)
            raise PersonalisationError(exc.field, reason) from None

    def _render(self, row: Mapping[str, Any]) -> list[dict[str, Any]]:
        values = {key: renderer(row) for key, renderer in self._renderers.items()}
        if self._raw:
            components = list(values["components"])
            if self.fields and row is not _SAMPLE:
                # Checked here as the payload builder would (same field names), to mask its errors.
                check_component_list(components, "template.components")
            return components
        return components_from_spec(
            header=values.get("header"),
            body=values.get("body_parameters"),
            buttons=values.get("buttons"),
            limited_time_offer_ms=values.get("limited_time_offer_ms"),
        )


__all__ = ["PersonalisationError", "Personaliser", "mask_row_numbers"]
