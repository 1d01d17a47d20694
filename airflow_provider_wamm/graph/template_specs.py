"""Message templates as Meta returns them, read into what a send must supply.

``GET /<WABA_ID>/message_templates`` describes each template's components in upper case
(``HEADER`` with a ``format``, ``BODY`` with ``{{1}}`` or ``{{name}}`` placeholders,
``BUTTONS``, ``LIMITED_TIME_OFFER``, ``CAROUSEL``). :class:`TemplateSpec` turns such an entry into
the parameters a send must carry; :mod:`airflow_provider_wamm.graph.templates` checks send-time
components against it.

Header formats and what a send gives for them (Meta's pages, as of 2026):

* ``TEXT`` (a ``text`` parameter when the text has a placeholder), ``IMAGE``, ``VIDEO``,
  ``DOCUMENT``, ``LOCATION``;
* ``GIF``: an mp4 of at most 3.5 MB, Marketing Messages API only ("Template components" and
  "Template media", https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-media,
  May 21, 2026); sent as a ``gif`` parameter with an ``id`` or ``link``, the form Meta uses for the
  other media (Meta prints no send example for it);
* ``PRODUCT``: a ``product`` parameter naming ``product_retailer_id`` and ``catalog_id``, on
  single-product templates ("Single-product message templates",
  https://developers.facebook.com/documentation/business-messaging/whatsapp/catalogs/spm-template-messages,
  Jun 24, 2026) and on the cards of product-card carousels ("Product card carousel templates",
  https://developers.facebook.com/documentation/business-messaging/whatsapp/catalogs/product-card-carousel-template-messages,
  Jun 18, 2026: a template is created with two cards and sends up to ten).

Buttons that take nothing at send time: static ``URL``, ``PHONE_NUMBER``, ``VOICE_CALL``, ``SPM``
(the View button of product templates) and ``REQUEST_CONTACT_INFO`` ("Business-scoped user IDs",
Jun 29, 2026). A ``CATALOG`` button's parameter is optional: "If the parameters object is omitted,
the product image of the first item in your catalog will be used" ("Catalog templates",
https://developers.facebook.com/documentation/business-messaging/whatsapp/catalogs/catalog-template-messages,
Jun 18, 2026).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUTTON_SUB_TYPES",
    "HEADER_FORMAT_PARAMETER_TYPES",
    "ButtonSpec",
    "CardSpec",
    "TemplateSpec",
    "describe_placeholders",
]

_PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
#: Header ``format`` -> the send-time parameter type it takes (``TEXT`` headers take ``text``).
HEADER_FORMAT_PARAMETER_TYPES: dict[str, str] = {
    "IMAGE": "image",
    "VIDEO": "video",
    "DOCUMENT": "document",
    "LOCATION": "location",
    "GIF": "gif",
    "PRODUCT": "product",
}
#: Template button ``type`` -> send-time ``sub_type`` (``None``: the button takes no send-time parameter).
BUTTON_SUB_TYPES: dict[str, str | None] = {
    "URL": "url",
    "QUICK_REPLY": "quick_reply",
    "COPY_CODE": "copy_code",
    "FLOW": "flow",
    "CATALOG": "catalog",
    "MPM": "mpm",
    "PHONE_NUMBER": None,
    "VOICE_CALL": None,
    "SPM": None,
    "REQUEST_CONTACT_INFO": None,
    "OTP": "url",
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


def describe_placeholders(names: Sequence[str]) -> str:
    """Placeholder names as the template writes them: ``{{1}}, {{2}}``."""
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
        return BUTTON_SUB_TYPES.get(self.type, _lower(self.type) or None)

    @property
    def required(self) -> bool:
        """Whether every send must include a component for this button."""
        return (self.type == "URL" and self.dynamic) or self.type in ("COPY_CODE", "MPM")


@dataclass(frozen=True)
class CardSpec:
    """The parameters a header/body/buttons layout needs (a template, or one carousel card)."""

    header_format: str | None = None
    """``TEXT``, ``IMAGE``, ``VIDEO``, ``DOCUMENT``, ``LOCATION``, ``GIF``, ``PRODUCT`` or ``None`` (no
    header)."""
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
            parts.append(f"header text {describe_placeholders(self.header_params)}")
        elif self.header_format and self.header_format != "TEXT":
            parts.append(f"{self.header_format.lower()} header")
        if self.body_params:
            parts.append(f"body {describe_placeholders(self.body_params)}")
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
    message_send_ttl_seconds: int | None = None
    """The template's time-to-live: Meta drops a message not delivered within it, without a webhook.
    ``None`` means Meta's default (30 days for marketing templates; set 43,200 to 2,592,000 seconds,
    honoured only by the Marketing Messages API). An automatic category change resets it ("Configure
    message time-to-live",
    https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/time-to-live,
    May 21, 2026)."""

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
            message_send_ttl_seconds=_ttl_seconds(entry.get("message_send_ttl_seconds")),
        )

    @property
    def named(self) -> bool:
        """Whether the template uses named parameters."""
        return self.parameter_format == "NAMED"

    @property
    def product_carousel(self) -> bool:
        """Whether this is a product-card carousel: its cards have ``PRODUCT`` headers, and a send may
        carry 1 to 10 cards whatever number the template was created with."""
        return bool(self.cards) and all(card.header_format == "PRODUCT" for card in self.cards)

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


def _ttl_seconds(value: object) -> int | None:
    """``message_send_ttl_seconds`` as Meta returns it (a number, or ``null`` for the default)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None
