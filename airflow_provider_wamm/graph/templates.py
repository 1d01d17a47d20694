"""Message templates as Meta returns them, and a preflight check of send-time components against them.

``GET /<WABA_ID>/message_templates`` describes each template's components in upper case
(``HEADER`` with a ``format``, ``BODY`` with ``{{1}}`` or ``{{name}}`` placeholders,
``BUTTONS``, ``LIMITED_TIME_OFFER``, ``CAROUSEL``). :class:`TemplateSpec` turns such an
entry into what a send must supply, and :func:`check_components` lists, in plain words,
what a components list gets wrong (the problems Meta would answer with 132000 or 132018),
before the first message goes out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ButtonSpec", "CardSpec", "TemplateSpec", "check_components", "example_components"]

_PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_MEDIA_FORMATS = {"IMAGE": "image", "VIDEO": "video", "DOCUMENT": "document", "LOCATION": "location"}
# Template button type -> send-time sub_type (None: the button takes no send-time parameter).
_BUTTON_SUB_TYPES: dict[str, str | None] = {
    "URL": "url",
    "QUICK_REPLY": "quick_reply",
    "COPY_CODE": "copy_code",
    "FLOW": "flow",
    "CATALOG": "catalog",
    "MPM": "mpm",
    "PHONE_NUMBER": None,
    "VOICE_CALL": None,
    "OTP": "url",
}
_SAMPLE_MEDIA = {
    "image": "https://example.com/sample.jpg",
    "video": "https://example.com/sample.mp4",
    "document": "https://example.com/sample.pdf",
}


def _placeholders(text: object) -> tuple[str, ...]:
    """Distinct placeholder names in order of first appearance (``("1", "2")`` or ``("first_name",)``)."""
    if not isinstance(text, str):
        return ()
    seen: dict[str, None] = {}
    for name in _PLACEHOLDER_RE.findall(text):
        seen.setdefault(name, None)
    return tuple(seen)


def _upper(value: object) -> str:
    return value.upper() if isinstance(value, str) else ""


def _lower(value: object) -> str:
    return value.lower() if isinstance(value, str) else ""


def _describe(names: Sequence[str]) -> str:
    return ", ".join("{{" + n + "}}" for n in names)


@dataclass(frozen=True)
class ButtonSpec:
    """One button of a template, as defined at creation time."""

    index: int
    """Zero-based position; the send-time ``index``."""
    type: str
    """Meta's button type: ``URL``, ``QUICK_REPLY``, ``COPY_CODE``, ``FLOW``, ``PHONE_NUMBER``..."""
    text: str | None = None
    """The button label."""
    dynamic: bool = False
    """For ``URL`` buttons: the URL ends in a placeholder, so a suffix must be sent."""

    @property
    def sub_type(self) -> str | None:
        """The send-time ``sub_type`` for this button, or ``None`` if it takes no parameter."""
        if self.type == "URL" and not self.dynamic:
            return None
        return _BUTTON_SUB_TYPES.get(self.type, _lower(self.type) or None)

    @property
    def required(self) -> bool:
        """Whether every send must include a component for this button."""
        return (self.type == "URL" and self.dynamic) or self.type in ("COPY_CODE", "MPM")


@dataclass(frozen=True)
class CardSpec:
    """The parameters a header/body/buttons layout needs (a template, or one carousel card)."""

    header_format: str | None = None
    """``TEXT``, ``IMAGE``, ``VIDEO``, ``DOCUMENT``, ``LOCATION`` or ``None`` (no header)."""
    header_params: tuple[str, ...] = ()
    """Placeholders of a ``TEXT`` header (at most one)."""
    body_params: tuple[str, ...] = ()
    """Body placeholders in order: ``("1", "2")`` or ``("first_name", "discount")``."""
    buttons: tuple[ButtonSpec, ...] = ()
    """Buttons in template order."""

    @classmethod
    def from_components(cls, components: object) -> CardSpec:
        """Read the ``HEADER``/``BODY``/``BUTTONS`` components of a template or card."""
        header_format: str | None = None
        header_params: tuple[str, ...] = ()
        body_params: tuple[str, ...] = ()
        buttons: list[ButtonSpec] = []
        for comp in (
            components if isinstance(components, Sequence) and not isinstance(components, str) else ()
        ):
            if not isinstance(comp, Mapping):
                continue
            ctype = _upper(comp.get("type"))
            if ctype == "HEADER":
                header_format = _upper(comp.get("format")) or "TEXT"
                if header_format == "TEXT":
                    header_params = _placeholders(comp.get("text"))
            elif ctype == "BODY":
                body_params = _placeholders(comp.get("text"))
            elif ctype == "BUTTONS":
                for btn in comp.get("buttons") or ():
                    if not isinstance(btn, Mapping):
                        continue
                    btype = _upper(btn.get("type"))
                    label = btn.get("text")
                    buttons.append(
                        ButtonSpec(
                            index=len(buttons),
                            type=btype,
                            text=label if isinstance(label, str) else None,
                            dynamic=btype == "URL" and bool(_placeholders(btn.get("url"))),
                        )
                    )
        return cls(header_format, header_params, body_params, tuple(buttons))

    def describe(self) -> str:
        """One line saying what a send must supply."""
        parts = []
        if self.header_format == "TEXT" and self.header_params:
            parts.append(f"header text {_describe(self.header_params)}")
        elif self.header_format and self.header_format != "TEXT":
            parts.append(f"{self.header_format.lower()} header")
        if self.body_params:
            parts.append(f"body {_describe(self.body_params)}")
        for b in self.buttons:
            if b.sub_type:
                parts.append(f"button {b.index} {b.sub_type}{'' if b.required else ' (optional)'}")
        return ", ".join(parts) or "no parameters"


@dataclass(frozen=True)
class TemplateSpec(CardSpec):
    """A ``message_templates`` entry reduced to what matters at send time."""

    name: str = ""
    """Template name."""
    language: str = ""
    """Language code, e.g. ``en_US``."""
    status: str = ""
    """``APPROVED``, ``PENDING``, ``REJECTED``, ``PAUSED``, ``DISABLED``..."""
    category: str = ""
    """``MARKETING``, ``UTILITY`` or ``AUTHENTICATION``."""
    parameter_format: str = "POSITIONAL"
    """``POSITIONAL`` (``{{1}}``) or ``NAMED`` (``{{first_name}}``)."""
    id: str | None = None
    """Meta's template id (used by template analytics)."""
    limited_time_offer: bool = False
    """The template has a ``LIMITED_TIME_OFFER`` component."""
    offer_expires: bool = False
    """The offer has an expiration, so each send must give ``expiration_time_ms``."""
    cards: tuple[CardSpec, ...] = field(default=())
    """Carousel cards (empty when the template is not a carousel)."""

    @classmethod
    def from_api(cls, entry: Mapping[str, Any]) -> TemplateSpec:
        """Build from one element of ``message_templates``' ``data``."""
        components = entry.get("components") or ()
        layout = CardSpec.from_components(components)
        lto = False
        expires = False
        cards: list[CardSpec] = []
        for comp in components if isinstance(components, Sequence) else ():
            if not isinstance(comp, Mapping):
                continue
            ctype = _upper(comp.get("type"))
            if ctype == "LIMITED_TIME_OFFER":
                lto = True
                offer = comp.get("limited_time_offer")
                expires = bool(offer.get("has_expiration")) if isinstance(offer, Mapping) else False
            elif ctype == "CAROUSEL":
                cards = [
                    CardSpec.from_components(card.get("components"))
                    for card in comp.get("cards") or ()
                    if isinstance(card, Mapping)
                ]
        names = layout.header_params + layout.body_params
        declared = _upper(entry.get("parameter_format"))
        if declared not in ("POSITIONAL", "NAMED"):
            declared = "NAMED" if any(not n.isdigit() for n in names) else "POSITIONAL"
        template_id = entry.get("id")
        return cls(
            header_format=layout.header_format,
            header_params=layout.header_params,
            body_params=layout.body_params,
            buttons=layout.buttons,
            name=str(entry.get("name") or ""),
            language=str(entry.get("language") or ""),
            status=_upper(entry.get("status")),
            category=_upper(entry.get("category")),
            parameter_format=declared,
            id=str(template_id) if template_id is not None else None,
            limited_time_offer=lto,
            offer_expires=expires,
            cards=tuple(cards),
        )

    @property
    def named(self) -> bool:
        """Whether the template uses named parameters."""
        return self.parameter_format == "NAMED"

    def marketing_problems(self) -> list[str]:
        """Why this template cannot go through the Marketing Messages API (empty if it can)."""
        problems = []
        if self.status != "APPROVED":
            problems.append(
                f"template {self.name!r} ({self.language}) has status {self.status or 'unknown'}; "
                "only APPROVED templates can be sent"
            )
        if self.category != "MARKETING":
            problems.append(
                f"template {self.name!r} is in category {self.category or 'unknown'}; the Marketing "
                "Messages API sends only MARKETING templates (Meta error 134100)"
            )
        return problems


# --------------------------------------------------------------------------------------------
# check_components
# --------------------------------------------------------------------------------------------


def _params(comp: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    params = comp.get("parameters")
    if isinstance(params, Sequence) and not isinstance(params, str):
        return [p for p in params if isinstance(p, Mapping)]
    return []


def _check_named(
    where: str, expected: Sequence[str], params: list[Mapping[str, Any]], named: bool
) -> list[str]:
    problems: list[str] = []
    if named:
        given = [p.get("parameter_name") for p in params]
        if any(name is None for name in given) and params:
            problems.append(
                f"{where}: the template uses named parameters ({_describe(expected)}); set parameter_name "
                "on every parameter"
            )
            return problems
        missing = [n for n in expected if n not in given]
        extra = [str(n) for n in given if n not in expected]
        if missing:
            problems.append(f"{where}: missing named parameter(s) {', '.join(repr(n) for n in missing)}")
        if extra:
            problems.append(
                f"{where}: parameter(s) {', '.join(repr(n) for n in extra)} are not in the template "
                f"(it has {_describe(expected) or 'none'})"
            )
        return problems
    if any(p.get("parameter_name") is not None for p in params):
        problems.append(f"{where}: the template uses positional parameters; remove parameter_name")
    if len(params) != len(expected):
        problems.append(
            f"{where}: the template expects {len(expected)} parameter(s) ({_describe(expected) or 'none'}), "
            f"got {len(params)} (Meta error 132000)"
        )
    return problems


def _check_layout(
    layout: CardSpec, components: Sequence[Mapping[str, Any]], named: bool, prefix: str
) -> list[str]:
    """What the header, body and button components of a send get wrong for ``layout``."""
    headers = [c for c in components if _lower(c.get("type")) == "header"]
    bodies = [c for c in components if _lower(c.get("type")) == "body"]
    buttons = [c for c in components if _lower(c.get("type")) == "button"]
    problems = _check_header(layout, headers[0] if headers else None, named, prefix)
    body_params = _params(bodies[0]) if bodies else []
    if layout.body_params or body_params:
        problems += _check_named(f"{prefix}body", layout.body_params, body_params, named)
    return problems + _check_buttons(layout, buttons, prefix)


def _check_header(layout: CardSpec, header: Mapping[str, Any] | None, named: bool, prefix: str) -> list[str]:
    """What the header component of a send (``None``: it has none) gets wrong for ``layout``."""
    fmt = layout.header_format
    header_params = _params(header) if header is not None else []
    if fmt is None or (fmt == "TEXT" and not layout.header_params):
        if header is None:
            return []
        what = "no header" if fmt is None else "a header without parameters"
        return [f"{prefix}header: the template has {what}; remove the header component"]
    if fmt == "TEXT":
        if header is None:
            return [
                f"{prefix}header: the template's header text has {_describe(layout.header_params)}; "
                "send a header component with a text parameter"
            ]
        if any(_lower(p.get("type")) != "text" for p in header_params):
            return [f"{prefix}header: the template's header is TEXT; send a text parameter"]
        return _check_named(f"{prefix}header", layout.header_params, header_params, named)
    kind = _MEDIA_FORMATS.get(fmt, fmt.lower())
    if header is None:
        return [
            f"{prefix}header: the template's header is {fmt}; send a header component with a {kind} parameter"
        ]
    if len(header_params) != 1 or _lower(header_params[0].get("type")) != kind:
        got = ", ".join(repr(p.get("type")) for p in header_params) or "no parameter"
        return [f"{prefix}header: the template's header is {fmt}; send one {kind} parameter, got {got}"]
    return []


def _check_buttons(layout: CardSpec, buttons: Sequence[Mapping[str, Any]], prefix: str) -> list[str]:
    """What the button components of a send get wrong for ``layout``: unknown, mistyped or missing ones."""
    problems: list[str] = []
    by_index: dict[int, Mapping[str, Any]] = {}
    for comp in buttons:
        raw = comp.get("index")
        try:
            idx = int(raw) if not isinstance(raw, bool) else -1  # type: ignore[arg-type]
        except (TypeError, ValueError):
            problems.append(f"{prefix}button: index {raw!r} is not a number")
            continue
        if not 0 <= idx < len(layout.buttons):
            have = f"0-{len(layout.buttons) - 1}" if layout.buttons else "none"
            problems.append(f"{prefix}button {idx}: the template has no such button (it has {have})")
            continue
        spec = layout.buttons[idx]
        by_index[idx] = comp
        sub_type = _lower(comp.get("sub_type"))
        if spec.sub_type is None:
            what = "a static URL" if spec.type == "URL" else spec.type
            problems.append(f"{prefix}button {idx}: the template's button is {what} and takes no parameter")
        elif sub_type != spec.sub_type:
            problems.append(
                f"{prefix}button {idx}: the template's button is {spec.type}; send sub_type "
                f"{spec.sub_type!r}, not {comp.get('sub_type')!r}"
            )
    for spec in layout.buttons:
        if spec.required and spec.index not in by_index:
            problems.append(
                f"{prefix}button {spec.index}: the template's {spec.type} button needs a {spec.sub_type} "
                "button component"
            )
    return problems


def check_components(
    components: Sequence[Mapping[str, Any]], template: Mapping[str, Any] | TemplateSpec
) -> list[str]:
    """List what ``components`` (send-time) get wrong for ``template``; empty when they fit.

    :param components: the components list of a send (as given to ``build_marketing_message``).
    :param template: a ``message_templates`` entry or a :class:`TemplateSpec`.
    """
    spec = template if isinstance(template, TemplateSpec) else TemplateSpec.from_api(template)
    if not isinstance(components, Sequence) or isinstance(components, str):
        return ["components must be a list"]
    comps = [c for c in components if isinstance(c, Mapping)]
    problems: list[str] = []
    if len(comps) != len(components):
        problems.append("every component must be an object")
    known = {"header", "body", "button", "limited_time_offer", "carousel"}
    for c in comps:
        ctype = _lower(c.get("type"))
        if ctype not in known:
            problems.append(f"component type {c.get('type')!r} is unknown (use one of {sorted(known)})")
    for ctype in ("header", "body", "limited_time_offer", "carousel"):
        if sum(1 for c in comps if _lower(c.get("type")) == ctype) > 1:
            problems.append(f"more than one {ctype} component")
    problems += _check_layout(spec, comps, spec.named, "")

    offers = [c for c in comps if _lower(c.get("type")) == "limited_time_offer"]
    if spec.offer_expires and not offers:
        problems.append("limited_time_offer: the template's offer expires; send its expiration_time_ms")
    if offers and not spec.limited_time_offer:
        problems.append("limited_time_offer: the template has no limited-time offer; remove the component")

    carousels = [c for c in comps if _lower(c.get("type")) == "carousel"]
    if spec.cards and not carousels:
        problems.append(f"carousel: the template has {len(spec.cards)} cards; send a carousel component")
    elif carousels and not spec.cards:
        problems.append("carousel: the template is not a carousel; remove the component")
    elif carousels:
        cards = carousels[0].get("cards")
        cards = [c for c in cards if isinstance(c, Mapping)] if isinstance(cards, Sequence) else []
        if len(cards) != len(spec.cards):
            problems.append(f"carousel: the template has {len(spec.cards)} cards, got {len(cards)}")
        for card in cards:
            idx = card.get("card_index")
            if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(spec.cards):
                problems.append(f"carousel: card_index {idx!r} does not exist in the template")
                continue
            card_comps = card.get("components")
            card_comps = (
                [c for c in card_comps if isinstance(c, Mapping)] if isinstance(card_comps, Sequence) else []
            )
            problems += _check_layout(spec.cards[idx], card_comps, spec.named, f"card {idx} ")
    return problems


# --------------------------------------------------------------------------------------------
# Sample components (previews, dry runs, the sandbox)
# --------------------------------------------------------------------------------------------


def _examples(component: Mapping[str, Any], key: str, named_key: str) -> dict[str, str]:
    example = component.get("example")
    out: dict[str, str] = {}
    if not isinstance(example, Mapping):
        return out
    named = example.get(named_key)
    if isinstance(named, Sequence):
        for item in named:
            if isinstance(item, Mapping) and "param_name" in item:
                out[str(item["param_name"])] = str(item.get("example", ""))
    values = example.get(key)
    if (
        isinstance(values, Sequence)
        and values
        and isinstance(values[0], Sequence)
        and not isinstance(values[0], str)
    ):
        values = values[0]
    if isinstance(values, Sequence) and not isinstance(values, str):
        for i, value in enumerate(values, start=1):
            out.setdefault(str(i), str(value))
    return out


def _sample_layout(layout: CardSpec, raw: object, named: bool) -> list[dict[str, Any]]:
    comps = [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, Sequence) else []
    by_type = {_upper(c.get("type")): c for c in comps}
    out: list[dict[str, Any]] = []

    def param(name: str, value: str) -> dict[str, Any]:
        p: dict[str, Any] = {"type": "text", "text": value or f"sample {name}"}
        if named:
            p["parameter_name"] = name
        return p

    fmt = layout.header_format
    if fmt == "TEXT" and layout.header_params:
        ex = _examples(by_type.get("HEADER", {}), "header_text", "header_text_named_params")
        out.append({"type": "header", "parameters": [param(n, ex.get(n, "")) for n in layout.header_params]})
    elif fmt in ("IMAGE", "VIDEO", "DOCUMENT"):
        kind = _MEDIA_FORMATS[fmt]
        out.append({"type": "header", "parameters": [{"type": kind, kind: {"link": _SAMPLE_MEDIA[kind]}}]})
    elif fmt == "LOCATION":
        location = {
            "latitude": "52.520008",
            "longitude": "13.404954",
            "name": "Sample",
            "address": "Sample street 1",
        }
        out.append({"type": "header", "parameters": [{"type": "location", "location": location}]})
    if layout.body_params:
        ex = _examples(by_type.get("BODY", {}), "body_text", "body_text_named_params")
        out.append({"type": "body", "parameters": [param(n, ex.get(n, "")) for n in layout.body_params]})
    for b in layout.buttons:
        if not b.required:
            continue
        if b.sub_type == "url":
            out.append(
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": str(b.index),
                    "parameters": [{"type": "text", "text": "sample"}],
                }
            )
        elif b.sub_type == "copy_code":
            params: list[dict[str, Any]] = [{"type": "coupon_code", "coupon_code": "SAMPLE10"}]
            out.append(
                {"type": "button", "sub_type": "copy_code", "index": str(b.index), "parameters": params}
            )
        elif b.sub_type == "mpm":
            params = [{"type": "action", "action": {"sections": []}}]
            out.append({"type": "button", "sub_type": "mpm", "index": str(b.index), "parameters": params})
    return out


def example_components(
    template: Mapping[str, Any], *, expiration_time_ms: int = 4102444800000
) -> list[dict[str, Any]]:
    """A components list that fits ``template``, filled with the template's example values.

    Useful for previews, dry runs and tests; media headers get placeholder ``https://example.com``
    links and a limited-time offer gets ``expiration_time_ms``.
    """
    spec = TemplateSpec.from_api(template)
    raw = template.get("components") or ()
    out = _sample_layout(spec, raw, spec.named)
    if spec.offer_expires:
        lto = {"type": "limited_time_offer", "limited_time_offer": {"expiration_time_ms": expiration_time_ms}}
        out.append({"type": "limited_time_offer", "parameters": [lto]})
    if spec.cards:
        raw_cards: list[Any] = []
        for comp in raw if isinstance(raw, Sequence) else ():
            if isinstance(comp, Mapping) and _upper(comp.get("type")) == "CAROUSEL":
                raw_cards = [c for c in comp.get("cards") or () if isinstance(c, Mapping)]
        cards = [
            {
                "card_index": i,
                "components": _sample_layout(
                    card, raw_cards[i].get("components") if i < len(raw_cards) else (), spec.named
                ),
            }
            for i, card in enumerate(spec.cards)
        ]
        out.append({"type": "carousel", "cards": cards})
    return out
