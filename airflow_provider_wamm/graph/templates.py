"""A preflight check of send-time components against a template, and sample components for one.

:func:`check_components` lists, in plain words, what a components list gets wrong for a template
(the problems Meta would answer with 132000, 132012 or 132018), before the first message goes out;
:func:`example_components` builds a list that fits, from the template's example values. Templates
are read by :mod:`airflow_provider_wamm.graph.template_specs`; :class:`TemplateSpec`,
:class:`CardSpec` and :class:`ButtonSpec` stay importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_wamm.graph.limits import MAX_CAROUSEL_CARDS
from airflow_provider_wamm.graph.template_specs import (
    HEADER_FORMAT_PARAMETER_TYPES,
    ButtonSpec,
    CardSpec,
    TemplateSpec,
)
from airflow_provider_wamm.graph.template_specs import describe_placeholders as _describe

__all__ = [
    "SAMPLE_MEDIA_LINKS",
    "SAMPLE_PRODUCT",
    "ButtonSpec",
    "CardSpec",
    "TemplateSpec",
    "check_components",
    "example_components",
]

#: Placeholder links of the media headers in :func:`example_components`.
SAMPLE_MEDIA_LINKS: dict[str, str] = {
    "image": "https://example.com/sample.jpg",
    "video": "https://example.com/sample.mp4",
    "document": "https://example.com/sample.pdf",
    "gif": "https://example.com/sample-animation.mp4",
}
#: The product of the ``PRODUCT`` headers in :func:`example_components` (a placeholder catalogue item).
SAMPLE_PRODUCT: dict[str, str] = {"product_retailer_id": "sample-sku", "catalog_id": "100000000000000"}


def _upper(value: object) -> str:
    return value.upper() if isinstance(value, str) else ""


def _lower(value: object) -> str:
    return value.lower() if isinstance(value, str) else ""


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
    kind = HEADER_FORMAT_PARAMETER_TYPES.get(fmt, fmt.lower())
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

    return problems + _check_carousel(spec, comps)


def _check_carousel(spec: TemplateSpec, comps: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the carousel of a send gets wrong: a media carousel sends the template's cards, a product
    carousel 1 to 10 cards that all follow the template's card layout."""
    carousels = [c for c in comps if _lower(c.get("type")) == "carousel"]
    if spec.cards and not carousels:
        return [f"carousel: the template has {len(spec.cards)} cards; send a carousel component"]
    if carousels and not spec.cards:
        return ["carousel: the template is not a carousel; remove the component"]
    if not carousels:
        return []
    problems: list[str] = []
    cards = carousels[0].get("cards")
    cards = [c for c in cards if isinstance(c, Mapping)] if isinstance(cards, Sequence) else []
    if spec.product_carousel:
        last_index = MAX_CAROUSEL_CARDS - 1
        if not 1 <= len(cards) <= MAX_CAROUSEL_CARDS:
            problems.append(f"carousel: send 1 to {MAX_CAROUSEL_CARDS} product cards, got {len(cards)}")
    else:
        last_index = len(spec.cards) - 1
        if len(cards) != len(spec.cards):
            problems.append(f"carousel: the template has {len(spec.cards)} cards, got {len(cards)}")
    for card in cards:
        idx = card.get("card_index")
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx <= last_index:
            where = "is out of range (0-9)" if spec.product_carousel else "does not exist in the template"
            problems.append(f"carousel: card_index {idx!r} {where}")
            continue
        card_comps = card.get("components")
        card_comps = (
            [c for c in card_comps if isinstance(c, Mapping)] if isinstance(card_comps, Sequence) else []
        )
        layout = spec.cards[min(idx, len(spec.cards) - 1)]
        problems += _check_layout(layout, card_comps, spec.named, f"card {idx} ")
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
    """Sample header, body and button components for ``layout`` (``raw``: its template components)."""
    comps = [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, Sequence) else []
    by_type = {_upper(c.get("type")): c for c in comps}

    def param(name: str, value: str) -> dict[str, Any]:
        p: dict[str, Any] = {"type": "text", "text": value or f"sample {name}"}
        if named:
            p["parameter_name"] = name
        return p

    out: list[dict[str, Any]] = []
    if layout.header_format == "TEXT" and layout.header_params:
        ex = _examples(by_type.get("HEADER", {}), "header_text", "header_text_named_params")
        out.append({"type": "header", "parameters": [param(n, ex.get(n, "")) for n in layout.header_params]})
    elif layout.header_format in HEADER_FORMAT_PARAMETER_TYPES:
        out.append({"type": "header", "parameters": [_sample_header_parameter(layout.header_format)]})
    if layout.body_params:
        ex = _examples(by_type.get("BODY", {}), "body_text", "body_text_named_params")
        out.append({"type": "body", "parameters": [param(n, ex.get(n, "")) for n in layout.body_params]})
    return out + _sample_buttons(layout)


def _sample_header_parameter(header_format: str) -> dict[str, Any]:
    """The sample parameter of a media, location or product header."""
    kind = HEADER_FORMAT_PARAMETER_TYPES[header_format]
    if kind == "location":
        location = {
            "latitude": "52.520008",
            "longitude": "13.404954",
            "name": "Sample",
            "address": "Sample street 1",
        }
        return {"type": "location", "location": location}
    if kind == "product":
        return {"type": "product", "product": dict(SAMPLE_PRODUCT)}
    return {"type": kind, kind: {"link": SAMPLE_MEDIA_LINKS[kind]}}


def _sample_buttons(layout: CardSpec) -> list[dict[str, Any]]:
    """Sample components of the buttons every send must carry (optional ones are left out)."""
    out: list[dict[str, Any]] = []
    for b in layout.buttons:
        if not b.required:
            continue
        if b.sub_type == "url":
            params: list[dict[str, Any]] = [{"type": "text", "text": "sample"}]
        elif b.sub_type == "copy_code":
            params = [{"type": "coupon_code", "coupon_code": "SAMPLE10"}]
        elif b.sub_type == "mpm":
            params = [{"type": "action", "action": {"sections": []}}]
        else:
            continue
        out.append({"type": "button", "sub_type": b.sub_type, "index": str(b.index), "parameters": params})
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
