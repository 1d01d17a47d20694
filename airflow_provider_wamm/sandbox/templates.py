"""Message templates the sandbox knows: how they are described, the default set, and loading others.

A template is described the way Meta stores it (``GET /<WABA_ID>/message_templates``); the send-time
checks (:mod:`airflow_provider_wamm.sandbox.validation`) are derived from its text. The default set
holds one template of each kind a marketing campaign sends: text, media, GIF (Marketing Messages API
only) and product headers, URL, quick-reply, copy-code, catalog and request-contact-info buttons, and a
product-card carousel (Meta's "Template components", "Single-product message templates", "Product card
carousel templates", "Catalog templates" and "Business-scoped user IDs" pages, 2026).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: ``message_status`` values of a send response.
MESSAGE_STATUSES = ("accepted", "held_for_quality_assessment", "paused")
TEMPLATE_CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
TEMPLATE_STATUSES = ("APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "PENDING_DELETION")
HEADER_FORMATS = ("TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION", "GIF", "PRODUCT")
#: The time-to-live a template may have, by category, in seconds (``-1``: 30 days), as "Configure
#: message time-to-live" (Meta, May 21, 2026) allows; marketing TTLs are honoured only by the
#: Marketing Messages API.
TTL_RANGES: dict[str, tuple[int, int]] = {
    "MARKETING": (43_200, 2_592_000),
    "UTILITY": (30, 43_200),
    "AUTHENTICATION": (30, 900),
}

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
#: Meta's rule for template names.
TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")


def placeholders(text: str | None) -> list[str]:
    """Distinct placeholder names in order of first appearance (``"1"``, ``"first_name"``)."""
    seen: list[str] = []
    for match in _PLACEHOLDER.finditer(text or ""):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


@dataclass(frozen=True)
class SandboxTemplate:
    """An approved (or not) message template the sandbox knows, described the way Meta stores it.

    The send-time checks are derived from the text: ``{{1}}``, ``{{2}}`` placeholders make a
    positional template, ``{{first_name}}`` a named one. Buttons are Meta's template buttons
    (``{"type": "URL", "text": "Shop", "url": "https://shop.example/{{1}}"}``,
    ``{"type": "COPY_CODE", "example": "SAVE20"}``, ``{"type": "QUICK_REPLY", "text": "Stop"}``).
    """

    name: str
    """Template name (``^[a-z0-9_]+$``)."""
    language: str = "en_US"
    """Language code the template was approved in."""
    body_text: str = "Hello!"
    """BODY text with ``{{1}}`` or ``{{name}}`` placeholders."""
    category: str = "MARKETING"
    """MARKETING, UTILITY or AUTHENTICATION (anything but MARKETING is refused with 134100)."""
    status: str = "APPROVED"
    """Meta's review status; PAUSED answers 132015, DISABLED 132016, others 132001."""
    header_format: str | None = None
    """HEADER format: TEXT, IMAGE, VIDEO, DOCUMENT, LOCATION or ``None`` (no header)."""
    header_text: str | None = None
    """Text of a TEXT header (may hold one placeholder)."""
    footer_text: str | None = None
    """Optional FOOTER text."""
    buttons: tuple[Mapping[str, Any], ...] = ()
    """Buttons in Meta's template format."""
    message_status: str = "accepted"
    """``message_status`` of its sends: ``accepted``, ``held_for_quality_assessment`` or ``paused``."""
    id: str | None = None
    """Template id; derived from name and language when not given."""
    examples: Mapping[str, Any] | None = None
    """Example values by placeholder name, shown in the template's ``example`` blocks."""
    cards: tuple[Mapping[str, Any], ...] = ()
    """Carousel cards in Meta's format (``{"components": [HEADER, BODY?, BUTTONS?]}``); a carousel
    whose cards have ``PRODUCT`` headers is a product-card carousel."""
    message_send_ttl_seconds: int | None = None
    """The template's time-to-live (``None``: Meta's default, 30 days for marketing templates)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not TEMPLATE_NAME.match(self.name):
            raise ValueError(f"template name {self.name!r} must match ^[a-z0-9_]+$")
        if self.category.upper() not in TEMPLATE_CATEGORIES:
            raise ValueError(f"template category {self.category!r} is not one of {TEMPLATE_CATEGORIES}")
        if self.status.upper() not in TEMPLATE_STATUSES:
            raise ValueError(f"template status {self.status!r} is not one of {TEMPLATE_STATUSES}")
        if self.header_format is not None and self.header_format.upper() not in HEADER_FORMATS:
            raise ValueError(f"header_format {self.header_format!r} is not one of {HEADER_FORMATS}")
        if self.message_status not in MESSAGE_STATUSES:
            raise ValueError(f"message_status {self.message_status!r} is not one of {MESSAGE_STATUSES}")
        object.__setattr__(self, "category", self.category.upper())
        object.__setattr__(self, "status", self.status.upper())
        if self.header_format is not None:
            object.__setattr__(self, "header_format", self.header_format.upper())
        object.__setattr__(self, "buttons", tuple(dict(b) for b in self.buttons))
        object.__setattr__(self, "cards", tuple(dict(c) for c in self.cards))
        self._check_ttl()
        if self.id is None:
            digest = hashlib.sha256(f"{self.name}|{self.language}".encode()).digest()
            object.__setattr__(self, "id", str(10**15 + int.from_bytes(digest[:6], "big") % (9 * 10**15)))
        positional, named = self._body_kinds()
        if positional and named:
            raise ValueError(f"template {self.name!r} mixes positional and named placeholders")

    def _check_ttl(self) -> None:
        ttl = self.message_send_ttl_seconds
        if ttl is None:
            return
        low, high = TTL_RANGES[self.category]
        if isinstance(ttl, bool) or not isinstance(ttl, int):
            raise ValueError(f"message_send_ttl_seconds must be an integer, got {ttl!r}")
        if not (low <= ttl <= high or (ttl == -1 and self.category != "MARKETING")):
            raise ValueError(
                f"message_send_ttl_seconds of a {self.category} template must be {low} to {high}, got {ttl}"
            )

    def _body_kinds(self) -> tuple[list[str], list[str]]:
        names = placeholders(self.body_text)
        positional = [n for n in names if n.isdigit()]
        named = [n for n in names if not n.isdigit()]
        return positional, named

    @property
    def parameter_format(self) -> str:
        """``NAMED`` when the body uses named placeholders, else ``POSITIONAL``."""
        return "NAMED" if self._body_kinds()[1] else "POSITIONAL"

    @property
    def body_param_count(self) -> int:
        """Number of body parameters a send must carry."""
        positional, named = self._body_kinds()
        return len(named) if named else len(positional)

    @property
    def body_param_names(self) -> tuple[str, ...]:
        """Names of the body parameters of a NAMED template (empty for positional ones)."""
        return tuple(self._body_kinds()[1])

    def _example(self, key: str) -> str:
        if self.examples and key in self.examples:
            return str(self.examples[key])
        return f"example_{key}"

    def to_meta(self) -> dict[str, Any]:
        """This template as ``GET /<WABA_ID>/message_templates`` returns it."""
        components: list[dict[str, Any]] = []
        if self.header_format == "TEXT":
            header: dict[str, Any] = {"type": "HEADER", "format": "TEXT", "text": self.header_text or ""}
            names = placeholders(self.header_text)
            if names:
                if self.parameter_format == "NAMED" and not names[0].isdigit():
                    header["example"] = {
                        "header_text_named_params": [
                            {"param_name": names[0], "example": self._example(names[0])}
                        ]
                    }
                else:
                    header["example"] = {"header_text": [self._example(names[0])]}
            components.append(header)
        elif self.header_format in ("LOCATION", "PRODUCT"):
            components.append({"type": "HEADER", "format": self.header_format})
        elif self.header_format is not None:
            handle = f"https://scontent.whatsapp.net/sandbox/{self.name}.{self.header_format.lower()}"
            components.append(
                {"type": "HEADER", "format": self.header_format, "example": {"header_handle": [handle]}}
            )
        body: dict[str, Any] = {"type": "BODY", "text": self.body_text}
        positional, named = self._body_kinds()
        if named:
            body["example"] = {
                "body_text_named_params": [{"param_name": n, "example": self._example(n)} for n in named]
            }
        elif positional:
            body["example"] = {"body_text": [[self._example(n) for n in positional]]}
        components.append(body)
        if self.footer_text:
            components.append({"type": "FOOTER", "text": self.footer_text})
        if self.buttons:
            components.append({"type": "BUTTONS", "buttons": [dict(b) for b in self.buttons]})
        if self.cards:
            components.append({"type": "CAROUSEL", "cards": [dict(c) for c in self.cards]})
        meta: dict[str, Any] = {
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        }
        if self.message_send_ttl_seconds is not None:
            meta["message_send_ttl_seconds"] = self.message_send_ttl_seconds
        return meta

    @classmethod
    def from_meta(cls, data: Mapping[str, Any], *, message_status: str = "accepted") -> SandboxTemplate:
        """Build a template from Meta's ``message_templates`` format (e.g. a dump of a real account)."""
        header_format = header_text = footer_text = None
        body_text = ""
        buttons: tuple[Mapping[str, Any], ...] = ()
        cards: tuple[Mapping[str, Any], ...] = ()
        examples: dict[str, Any] = {}
        for comp in data.get("components") or ():
            kind = str(comp.get("type", "")).upper()
            example = comp.get("example") or {}
            if kind == "HEADER":
                header_format = str(comp.get("format", "TEXT")).upper()
                header_text = comp.get("text")
                names = placeholders(header_text)
                if names and example.get("header_text"):
                    examples[names[0]] = example["header_text"][0]
                for item in example.get("header_text_named_params") or ():
                    examples[str(item.get("param_name"))] = item.get("example")
            elif kind == "BODY":
                body_text = str(comp.get("text", ""))
                positional = example.get("body_text") or [[]]
                for name, value in zip(placeholders(body_text), positional[0], strict=False):
                    examples[name] = value
                for item in example.get("body_text_named_params") or ():
                    examples[str(item.get("param_name"))] = item.get("example")
            elif kind == "FOOTER":
                footer_text = comp.get("text")
            elif kind == "BUTTONS":
                buttons = tuple(comp.get("buttons") or ())
            elif kind == "CAROUSEL":
                cards = tuple(comp.get("cards") or ())
        ttl = data.get("message_send_ttl_seconds")
        return cls(
            name=str(data["name"]),
            language=str(data.get("language", "en_US")),
            body_text=body_text,
            category=str(data.get("category", "MARKETING")),
            status=str(data.get("status", "APPROVED")),
            header_format=header_format,
            header_text=header_text,
            footer_text=footer_text,
            buttons=buttons,
            message_status=str(data.get("message_status", message_status)),
            id=str(data["id"]) if data.get("id") is not None else None,
            examples=examples or None,
            cards=cards,
            message_send_ttl_seconds=int(ttl) if ttl is not None else None,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SandboxTemplate:
        """Build a template from either this class's fields or Meta's format (with ``components``)."""
        if "components" in data:
            return cls.from_meta(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown template fields: {sorted(unknown)}")
        values = dict(data)
        if "buttons" in values:
            values["buttons"] = tuple(values["buttons"] or ())
        return cls(**values)


_SPM_BUTTONS = {"type": "BUTTONS", "buttons": [{"type": "SPM", "text": "View"}]}

#: The default templates, as :class:`SandboxTemplate` fields (all ``en_US``).
_DEFAULT_TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "name": "spring_sale",
        "body_text": "Hi {{1}}, our spring sale is on: {{2}} off everything until Sunday.",
        "footer_text": "Reply STOP to opt out",
        "buttons": (
            {"type": "URL", "text": "Shop now", "url": "https://shop.example.com/spring/{{1}}"},
            {"type": "QUICK_REPLY", "text": "Stop promotions"},
        ),
        "examples": {"1": "Ana", "2": "20%"},
    },
    {
        "name": "welcome_named",
        "body_text": "Welcome to our club, {{first_name}}! Your member perks are waiting.",
        "examples": {"first_name": "Ana"},
    },
    {
        "name": "coupon_offer",
        "body_text": "{{1}}, here is your coupon for {{2}} off your next order.",
        "buttons": ({"type": "COPY_CODE", "example": "SAVE20"},),
        "examples": {"1": "Ana", "2": "15%"},
    },
    {
        "name": "image_promo",
        "header_format": "IMAGE",
        "body_text": "New arrivals are here, {{1}}. Take a look!",
        "examples": {"1": "Ana"},
    },
    {
        "name": "utility_notice",
        "category": "UTILITY",
        "body_text": "Your order {{1}} has shipped.",
        "examples": {"1": "A-1001"},
    },
    {
        "name": "paced_promo",
        "body_text": "{{1}}, a new collection just dropped.",
        "message_status": "held_for_quality_assessment",
        "examples": {"1": "Ana"},
    },
    {
        "name": "product_spotlight",
        "header_format": "PRODUCT",
        "body_text": "Use code {{code}} to get {{percent}} off our newest succulent!",
        "footer_text": "Offer ends soon",
        "buttons": ({"type": "SPM", "text": "View"},),
        "examples": {"code": "15OFF", "percent": "15%"},
        "message_send_ttl_seconds": 172_800,
    },
    {
        "name": "gif_teaser",
        "header_format": "GIF",
        "body_text": "{{1}}, something is coming.",
        "examples": {"1": "Ana"},
    },
    {
        "name": "catalog_browse",
        "body_text": "{{1}}, browse our catalogue.",
        "buttons": ({"type": "CATALOG", "text": "View catalog"},),
        "examples": {"1": "Ana"},
    },
    {
        "name": "contact_request",
        "body_text": "Share your contact details and we will keep you posted.",
        "buttons": ({"type": "REQUEST_CONTACT_INFO"},),
    },
    {
        "name": "product_carousel",
        "body_text": "Rare succulents for sale! {{1}}, have a look.",
        "cards": tuple(
            {"components": [{"type": "HEADER", "format": "PRODUCT"}, _SPM_BUTTONS]} for _ in range(2)
        ),
        "examples": {"1": "Pablo"},
    },
)


def default_templates() -> dict[str, SandboxTemplate]:
    """A few realistic templates: marketing ones of each parameter and header kind, a single-product
    template, a catalog and a request-contact-info button, a product-card carousel, a utility one and
    a paced one."""
    templates = [SandboxTemplate(**fields) for fields in _DEFAULT_TEMPLATES]
    return {t.name: t for t in templates}


def normalize_templates(value: Any) -> dict[str, SandboxTemplate]:
    """Accept a mapping or a sequence of :class:`SandboxTemplate` or dicts (ours or Meta's format)."""
    items: list[tuple[str | None, Any]]
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = [(None, v) for v in value]
    else:
        raise ValueError("templates must be a mapping or a list of templates")
    result: dict[str, SandboxTemplate] = {}
    for key, item in items:
        template = item if isinstance(item, SandboxTemplate) else SandboxTemplate.from_dict(item)
        label = key or template.name
        if label in result:
            label = f"{template.name}:{template.language}"
        result[label] = template
    return result
