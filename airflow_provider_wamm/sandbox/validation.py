"""Checks of a ``POST /marketing_messages`` body, the way the Graph API answers them.

Shape problems answer code 100 ("Invalid parameter") with ``error_data.details`` naming the field
(a dotted path such as ``template.components[1].parameters[0].text``); problems against the approved
template answer the template codes (132001, 132000, 132012, 132015, 132016, 132018, 134100).
Each check returns ``None`` or a :class:`Problem`; nothing here raises on bad input.

This is the sandbox's own reading of Meta's rules, written apart from the provider's payload builder
(:mod:`airflow_provider_wamm.graph.payload`) and never importing it: the two check each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_wamm.sandbox.templates import TEMPLATE_NAME, SandboxTemplate, placeholders

_PHONE_CHARS = re.compile(r"^\+?[0-9 ()\-.]+$")
#: Top-level fields of a send, read from Meta's reference: who and what (the recipient by phone number or
#: business-scoped id, the template), and the options beside it (``context`` quotes an earlier message).
_ADDRESS_KEYS = frozenset({"messaging_product", "recipient_type", "to", "recipient", "type", "template"})
_OPTION_KEYS = frozenset(
    {"product_policy", "message_activity_sharing", "bid_spec", "biz_opaque_callback_data", "context"}
)
_TOP_LEVEL = _ADDRESS_KEYS | _OPTION_KEYS
_COMPONENT_TYPES = frozenset({"header", "body", "button", "limited_time_offer", "carousel"})
_BUTTON_SUB_TYPES = frozenset(
    {"url", "quick_reply", "copy_code", "flow", "catalog", "mpm", "order_details", "voice_call"}
)
_PARAM_REQUIRED: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "currency": ("currency",),
    "date_time": ("date_time",),
    "image": ("image",),
    "video": ("video",),
    "document": ("document",),
    "location": ("location",),
    "payload": ("payload",),
    "coupon_code": ("coupon_code",),
    "action": ("action",),
    "limited_time_offer": ("limited_time_offer",),
    "product": ("product",),
    "gif": ("gif",),
}
_MEDIA = frozenset({"image", "video", "document", "gif"})
#: A business-scoped user id: country code, ``.``, ``ENT.`` for a parent id, up to 128 letters and digits.
_BSUID = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$")
_CALLBACK_DATA_MAX = 512
_BUTTON_PARAM_TYPES: dict[str, frozenset[str]] = {
    "url": frozenset({"text"}),
    "quick_reply": frozenset({"payload", "text"}),
    "copy_code": frozenset({"coupon_code"}),
    "flow": frozenset({"action"}),
    "catalog": frozenset({"action"}),
    "mpm": frozenset({"action"}),
    "order_details": frozenset({"action"}),
    "voice_call": frozenset({"action", "text"}),
}
_BAD_TEXT = re.compile(r"[\n\t]| {5,}")
_MAX_CARDS = 10


@dataclass(frozen=True)
class Problem:
    """A Graph error the request deserves."""

    code: int
    details: str


def _required(field: str) -> Problem:
    return Problem(100, f"The parameter {field} is required.")


def _invalid(field: str, reason: str) -> Problem:
    return Problem(100, f"Invalid parameter {field}: {reason}")


def normalize_to(value: str) -> str | None:
    """Digits of a phone number as WhatsApp answers them in ``wa_id``; ``None`` when it is not one."""
    if not _PHONE_CHARS.match(value):
        return None
    digits = "".join(ch for ch in value if ch.isdigit())
    if not 6 <= len(digits) <= 15 or digits.startswith("0"):
        return None
    return digits


def _check_parameter(param: Any, path: str) -> Problem | None:
    if not isinstance(param, Mapping):
        return _invalid(path, "each parameter must be an object")
    kind = param.get("type")
    if not isinstance(kind, str) or kind not in _PARAM_REQUIRED:
        return _invalid(f"{path}.type", f"unknown parameter type {kind!r}")
    for key in _PARAM_REQUIRED[kind]:
        if key not in param:
            return _required(f"{path}.{key}")
    value = param[_PARAM_REQUIRED[kind][0]]
    if kind in ("text", "payload", "coupon_code"):
        if not isinstance(value, str) or value == "":
            return _invalid(f"{path}.{kind}", "must be a non-empty string")
        if kind == "coupon_code" and len(value) > 20:
            return _invalid(f"{path}.coupon_code", "must be at most 20 characters")
    elif kind in _MEDIA:
        if not isinstance(value, Mapping) or not (value.get("id") or value.get("link")):
            return _invalid(f"{path}.{kind}", "must have an id or a link")
    elif kind == "currency":
        if not isinstance(value, Mapping):
            return _invalid(f"{path}.currency", "must be an object")
        for key in ("fallback_value", "code", "amount_1000"):
            if key not in value:
                return _required(f"{path}.currency.{key}")
        if not isinstance(value["amount_1000"], int) or isinstance(value["amount_1000"], bool):
            return _invalid(f"{path}.currency.amount_1000", "must be an integer")
    elif kind == "date_time":
        if not isinstance(value, Mapping) or "fallback_value" not in value:
            return _required(f"{path}.date_time.fallback_value")
    elif kind == "location":
        if not isinstance(value, Mapping):
            return _invalid(f"{path}.location", "must be an object")
        for key in ("latitude", "longitude"):
            if key not in value:
                return _required(f"{path}.location.{key}")
    elif kind == "product":
        if not isinstance(value, Mapping):
            return _invalid(f"{path}.product", "must be an object")
        for key in ("product_retailer_id", "catalog_id"):
            if not isinstance(value.get(key), str) or not value[key]:
                return _required(f"{path}.product.{key}")
    elif not isinstance(value, Mapping):
        return _invalid(f"{path}.{kind}", "must be an object")
    if "parameter_name" in param and not (
        isinstance(param["parameter_name"], str) and param["parameter_name"]
    ):
        return _invalid(f"{path}.parameter_name", "must be a non-empty string")
    return None


def _check_component(comp: Any, path: str) -> Problem | None:
    if not isinstance(comp, Mapping):
        return _invalid(path, "each component must be an object")
    kind = comp.get("type")
    if not isinstance(kind, str):
        return _required(f"{path}.type")
    kind = kind.lower()
    if kind not in _COMPONENT_TYPES:
        return _invalid(f"{path}.type", f"unknown component type {comp.get('type')!r}")
    if kind == "carousel":
        cards = comp.get("cards")
        if not isinstance(cards, list) or not cards:
            return _required(f"{path}.cards")
        for c, card in enumerate(cards):
            if not isinstance(card, Mapping) or not isinstance(card.get("components"), list):
                return _required(f"{path}.cards[{c}].components")
            for k, sub in enumerate(card["components"]):
                problem = _check_component(sub, f"{path}.cards[{c}].components[{k}]")
                if problem:
                    return problem
        return None
    if kind == "button":
        sub_type = comp.get("sub_type")
        if not isinstance(sub_type, str):
            return _required(f"{path}.sub_type")
        if sub_type.lower() not in _BUTTON_SUB_TYPES:
            return _invalid(f"{path}.sub_type", f"unknown button sub_type {sub_type!r}")
        index = comp.get("index")
        if index is None:
            return _required(f"{path}.index")
        if not (
            (isinstance(index, int) and not isinstance(index, bool) and 0 <= index <= 9)
            or (isinstance(index, str) and index.isdigit() and int(index) <= 9)
        ):
            return _invalid(f"{path}.index", "must be a button position 0..9")
    params = comp.get("parameters", [])
    if not isinstance(params, list):
        return _invalid(f"{path}.parameters", "must be an array")
    for i, param in enumerate(params):
        problem = _check_parameter(param, f"{path}.parameters[{i}]")
        if problem:
            return problem
        if kind == "button":
            allowed = _BUTTON_PARAM_TYPES[str(comp["sub_type"]).lower()]
            if param["type"] not in allowed:
                return _invalid(
                    f"{path}.parameters[{i}].type",
                    f"a {comp['sub_type']} button takes {'/'.join(sorted(allowed))} parameters",
                )
    return None


def _check_field(
    container: Mapping[str, Any], key: str, path: str, is_valid: Callable[[Any], bool], reason: str
) -> Problem | None:
    """``path`` is required (not ``None``) and must pass ``is_valid``, or it fails for ``reason``."""
    value = container.get(key)
    if value is None:
        return _required(path)
    return None if is_valid(value) else _invalid(path, reason)


def _first_problem(*checks: Callable[[], Problem | None]) -> Problem | None:
    """The first problem the checks find, run in order (later checks may rely on earlier ones)."""
    for check in checks:
        problem = check()
        if problem:
            return problem
    return None


def _check_envelope(payload: Mapping[str, Any]) -> Problem | None:
    """Top-level keys, product, recipient type and message type."""
    for key in payload:
        if key not in _TOP_LEVEL:
            return _invalid(str(key), "unexpected parameter")
    return _first_problem(
        lambda: _check_field(
            payload, "messaging_product", "messaging_product", _equals("whatsapp"), 'must be "whatsapp"'
        ),
        lambda: _check_field(
            payload, "recipient_type", "recipient_type", _equals("individual"), 'must be "individual"'
        ),
        lambda: _check_field(
            payload, "type", "type", _equals("template"), "Message must be a template message."
        ),
    )


def _check_recipient(payload: Mapping[str, Any]) -> Problem | None:
    """A phone number in ``to``, or a business-scoped user id in ``recipient``."""
    to = payload.get("to")
    recipient = payload.get("recipient")
    if to is None and recipient is None:
        return _required("to")
    if to is not None and (not isinstance(to, str) or normalize_to(to) is None):
        return _invalid("to", "is not a valid WhatsApp phone number")
    if to is None and (not isinstance(recipient, str) or not _BSUID.match(recipient)):
        return _invalid("recipient", "must be a business-scoped user id such as US.13491208655302741918")
    return None


def _check_template_ref(payload: Mapping[str, Any]) -> Problem | None:
    """``template``: a name, a language code (policy ``deterministic``) and well-formed components."""
    problem = _check_field(payload, "template", "template", _is_mapping, "must be an object")
    if problem:
        return problem
    template = payload["template"]
    language = template.get("language")
    problem = _first_problem(
        lambda: _check_field(template, "name", "template.name", _is_template_name, "must match ^[a-z0-9_]+$"),
        lambda: _check_field(
            template, "language", "template.language", _is_mapping, "must be an object with a code"
        ),
        lambda: _check_field(
            language, "code", "template.language.code", _is_code, "must be a language code such as en_US"
        ),
    )
    if problem:
        return problem
    if "policy" in language and language["policy"] != "deterministic":
        return _invalid("template.language.policy", 'must be "deterministic"')
    components = template.get("components", [])
    if not isinstance(components, list):
        return _invalid("template.components", "must be an array")
    for i, comp in enumerate(components):
        problem = _check_component(comp, f"template.components[{i}]")
        if problem:
            return problem
    return None


def _check_options(payload: Mapping[str, Any]) -> Problem | None:
    """Optional settings: ``product_policy``, ``message_activity_sharing``, ``biz_opaque_callback_data``."""
    policy = payload.get("product_policy")
    if policy is not None and policy not in ("CLOUD_API_FALLBACK", "STRICT"):
        return _invalid("product_policy", "must be CLOUD_API_FALLBACK or STRICT")
    sharing = payload.get("message_activity_sharing")
    if sharing is not None and not isinstance(sharing, bool):
        return _invalid("message_activity_sharing", "must be a boolean")
    data = payload.get("biz_opaque_callback_data")
    if data is not None and (not isinstance(data, str) or len(data) > _CALLBACK_DATA_MAX):
        return _invalid(
            "biz_opaque_callback_data", f"must be a string of at most {_CALLBACK_DATA_MAX} characters"
        )
    return None


def _equals(expected: str) -> Callable[[Any], bool]:
    return lambda value: value == expected


def _is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_template_name(value: Any) -> bool:
    return isinstance(value, str) and TEMPLATE_NAME.match(value) is not None


def _is_code(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def check_payload(payload: Any) -> Problem | None:
    """Shape checks of a marketing message body (code 100 naming the field)."""
    if not isinstance(payload, Mapping):
        return Problem(100, "The request body must be a JSON object.")
    return _first_problem(
        lambda: _check_envelope(payload),
        lambda: _check_recipient(payload),
        lambda: _check_template_ref(payload),
        lambda: _check_options(payload),
    )


@dataclass(frozen=True)
class Layout:
    """What the header, body and buttons of a send (or of one carousel card) must carry."""

    body_count: int
    body_names: frozenset[str]
    header_kind: str | None
    """Parameter type the header needs (``text``, ``image``, ``product``...), ``None`` when it takes none."""
    header_format: str | None
    buttons: dict[int, tuple[str, bool]]
    """Button index -> (sub_type, needs a parameter)."""

    @classmethod
    def build(
        cls, header_format: str | None, header_text: str | None, body_text: str, buttons: Sequence[Any]
    ) -> Layout:
        """Derive the send-time expectations from a template's (or card's) parts."""
        header_kind: str | None = None
        if header_format == "TEXT":
            header_kind = "text" if placeholders(header_text) else None
        elif header_format is not None:
            header_kind = header_format.lower()
        expected: dict[int, tuple[str, bool]] = {}
        for i, button in enumerate(buttons):
            kind = str(button.get("type", "")).lower() if isinstance(button, Mapping) else ""
            if kind == "url":
                expected[i] = ("url", bool(placeholders(str(button.get("url", "")))))
            else:
                expected[i] = (kind, kind == "copy_code")
        names = placeholders(body_text)
        named = frozenset(n for n in names if not n.isdigit())
        count = len(named) if named else len([n for n in names if n.isdigit()])
        return cls(count, named, header_kind, header_format, expected)

    @classmethod
    def of_card(cls, card: Any) -> Layout:
        """The expectations of one carousel card, described in Meta's format."""
        parts: dict[str, Mapping[str, Any]] = {}
        components = card.get("components") if isinstance(card, Mapping) else None
        for comp in components if isinstance(components, list) else []:
            if isinstance(comp, Mapping):
                parts[str(comp.get("type", "")).upper()] = comp
        header = parts.get("HEADER")
        header_format = str(header.get("format", "TEXT")).upper() if header else None
        return cls.build(
            header_format,
            header.get("text") if header else None,
            str(parts.get("BODY", {}).get("text", "")),
            list(parts.get("BUTTONS", {}).get("buttons") or []),
        )

    def check(self, components: list[Any], where: str = "") -> Problem | None:
        """Compare send-time components with the layout (132000 count, 132012 kind, 132018 text)."""
        body: Mapping[str, Any] | None = None
        header: Mapping[str, Any] | None = None
        sent_buttons: dict[int, Mapping[str, Any]] = {}
        for comp in components:
            kind = str(comp.get("type", "")).lower()
            if kind == "body":
                body = comp
            elif kind == "header":
                header = comp
            elif kind == "button":
                sent_buttons[int(comp["index"])] = comp
        return _first_problem(
            lambda: self._check_body(list(body.get("parameters", [])) if body else [], where),
            lambda: self._check_header(list(header.get("parameters", [])) if header else [], where),
            lambda: self._check_buttons(sent_buttons, where),
        )

    def _check_body(self, params: list[Any], where: str) -> Problem | None:
        """Body parameters: clean text, and the template's count (positional) or names (named)."""
        for i, param in enumerate(params):
            if param.get("type") == "text" and _BAD_TEXT.search(param["text"]):
                return Problem(
                    132018,
                    f"{where}body.parameters[{i}].text: a parameter cannot have new-line or tab characters "
                    "or more than 4 consecutive spaces",
                )
        if self.body_names:
            names = [p.get("parameter_name") for p in params]
            if len(params) != len(self.body_names) or set(names) != self.body_names:
                return Problem(
                    132000,
                    f"{where}body: expected named parameters {sorted(self.body_names)}, got "
                    f"{sorted(str(n) for n in names)}",
                )
            return None
        return _count_problem(f"{where}body", len(params), self.body_count)

    def _check_header(self, params: list[Any], where: str) -> Problem | None:
        """One header parameter of the header's format when the header takes one."""
        problem = _count_problem(f"{where}header", len(params), 1 if self.header_kind else 0)
        if problem:
            return problem
        if self.header_kind and params[0].get("type") != self.header_kind:
            return Problem(
                132012,
                f"{where}header: parameter type {params[0].get('type')} does not match the format "
                f"{self.header_format} of the template header",
            )
        return None

    def _check_buttons(self, sent: dict[int, Mapping[str, Any]], where: str) -> Problem | None:
        """Sent buttons exist with the template's sub_type; buttons that need a parameter have one."""
        for index, comp in sent.items():
            if index not in self.buttons:
                return Problem(132000, f"{where}button at index {index} does not exist in the template")
            sub_type, _needs = self.buttons[index]
            if str(comp["sub_type"]).lower() != sub_type:
                return Problem(
                    132012,
                    f"{where}button at index {index}: sub_type {comp['sub_type']} does not match the "
                    f"template's {sub_type.upper()} button",
                )
        for index, (sub_type, needs) in self.buttons.items():
            button = sent.get(index)
            count = len(button.get("parameters", [])) if button else 0
            if needs and count != 1:
                return Problem(
                    132000,
                    f"{where}button at index {index} ({sub_type.upper()}): number of params ({count}) does "
                    "not match the expected number of params (1)",
                )
        return None


@dataclass(frozen=True)
class CompiledTemplate:
    """What a send of one template must carry, computed once per configuration."""

    template: SandboxTemplate
    layout: Layout
    """The header, body and buttons of the message."""
    cards: tuple[Layout, ...]
    """The carousel's cards (empty when the template is no carousel)."""

    @classmethod
    def build(cls, template: SandboxTemplate) -> CompiledTemplate:
        """Derive the send-time expectations of ``template``."""
        layout = Layout.build(
            template.header_format, template.header_text, template.body_text, template.buttons
        )
        return cls(template, layout, tuple(Layout.of_card(card) for card in template.cards))

    @property
    def product_cards(self) -> bool:
        """A product-card carousel: a send carries 1 to 10 cards, all like the template's first."""
        return bool(self.cards) and all(card.header_kind == "product" for card in self.cards)

    def check(self, components: list[Any]) -> Problem | None:
        """Compare send-time components with the template, carousel cards included."""
        problem = self.layout.check(components)
        if problem:
            return problem
        carousels = [c for c in components if str(c.get("type", "")).lower() == "carousel"]
        if not self.cards:
            return Problem(132000, "carousel: the template has no carousel") if carousels else None
        if not carousels:
            return Problem(132000, f"carousel: the template has {len(self.cards)} cards; none were sent")
        return self._check_cards(carousels[0]["cards"])

    def _check_cards(self, cards: list[Mapping[str, Any]]) -> Problem | None:
        """The number of cards, their indexes and each card's components."""
        allowed = range(_MAX_CARDS) if self.product_cards else range(len(self.cards))
        if not (1 <= len(cards) <= _MAX_CARDS if self.product_cards else len(cards) == len(self.cards)):
            return Problem(
                132000, f"carousel: number of cards ({len(cards)}) does not match the template's cards"
            )
        seen: set[int] = set()
        for card in cards:
            index = card.get("card_index")
            if not isinstance(index, int) or isinstance(index, bool) or index not in allowed or index in seen:
                return Problem(100, f"Invalid parameter carousel.cards.card_index: {index!r}")
            seen.add(index)
            layout = self.cards[min(index, len(self.cards) - 1)]
            problem = layout.check(list(card["components"]), f"cards[{index}].")
            if problem:
                return problem
        return None


def _count_problem(where: str, count: int, expected: int) -> Problem | None:
    """132000 when a component carries another number of parameters than the template expects."""
    if count == expected:
        return None
    return Problem(
        132000,
        f"{where}: number of localizable_params ({count}) does not match the expected "
        f"number of params ({expected})",
    )
