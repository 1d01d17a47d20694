"""One approved marketing template of every kind the provider sends, as ``message_templates`` lists it.

Shared by the graph tests (preflight, builders and validation agree on each) and the sandbox tests
(the sandbox, loaded with the same templates, accepts what the provider builds).
"""

from __future__ import annotations

from typing import Any


def _template(name: str, components: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": str(900000000000000 + sum(map(ord, name))),
        "name": name,
        "language": "en_US",
        "status": "APPROVED",
        "category": "MARKETING",
        "components": components,
        **extra,
    }


def _body(text: str, *examples: str) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "BODY", "text": text}
    if examples:
        body["example"] = {"body_text": [list(examples)]}
    return body


def _buttons(*buttons: dict[str, Any]) -> dict[str, Any]:
    return {"type": "BUTTONS", "buttons": list(buttons)}


def _media_header(fmt: str) -> dict[str, Any]:
    return {"type": "HEADER", "format": fmt, "example": {"header_handle": ["4::aGFuZGxl"]}}


_SPM = {"type": "SPM", "text": "View"}
_PRODUCT_HEADER = {"type": "HEADER", "format": "PRODUCT"}


def _cards(*components: dict[str, Any], count: int = 2) -> dict[str, Any]:
    return {"type": "CAROUSEL", "cards": [{"components": list(components)} for _ in range(count)]}


#: Template kind -> the template.
KINDS: dict[str, dict[str, Any]] = {
    "text_header_named": _template(
        "kind_text_header",
        [
            {
                "type": "HEADER",
                "format": "TEXT",
                "text": "Hi {{first_name}}",
                "example": {"header_text_named_params": [{"param_name": "first_name", "example": "Ana"}]},
            },
            {
                "type": "BODY",
                "text": "{{first_name}}, {{discount}} off today.",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "first_name", "example": "Ana"},
                        {"param_name": "discount", "example": "20%"},
                    ]
                },
            },
        ],
        parameter_format="NAMED",
    ),
    "image_header": _template("kind_image", [_media_header("IMAGE"), _body("New in, {{1}}.", "Ana")]),
    "video_header": _template("kind_video", [_media_header("VIDEO"), _body("Watch this.")]),
    "document_header": _template("kind_document", [_media_header("DOCUMENT"), _body("The catalogue.")]),
    "location_header": _template(
        "kind_location", [{"type": "HEADER", "format": "LOCATION"}, _body("Visit us, {{1}}.", "Ana")]
    ),
    "gif_header": _template("kind_gif", [_media_header("GIF"), _body("Look, {{1}}!", "Ana")]),
    "single_product": _template(
        "kind_single_product",
        [
            _PRODUCT_HEADER,
            {
                "type": "BODY",
                "text": "Use code {{code}} to get {{percent}} off our newest succulent!",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "code", "example": "15OFF"},
                        {"param_name": "percent", "example": "15%"},
                    ]
                },
            },
            {"type": "FOOTER", "text": "Offer ends soon"},
            _buttons(_SPM),
        ],
        parameter_format="NAMED",
    ),
    "url_reply_phone_coupon_buttons": _template(
        "kind_buttons",
        [
            _body("Hi {{1}}, take {{2}} off.", "Ana", "20%"),
            _buttons(
                {"type": "URL", "text": "Shop", "url": "https://shop.example/{{1}}", "example": ["x"]},
                {"type": "QUICK_REPLY", "text": "Stop promotions"},
                {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+4930123456"},
                {"type": "COPY_CODE", "example": "SAVE20"},
                {"type": "URL", "text": "Terms", "url": "https://shop.example/terms"},
            ),
        ],
    ),
    "flow_button": _template(
        "kind_flow", [_body("Tell us more."), _buttons({"type": "FLOW", "text": "Start", "flow_id": "1"})]
    ),
    "catalog_button": _template(
        "kind_catalog",
        [_body("Browse our catalogue, {{1}}.", "Ana"), _buttons({"type": "CATALOG", "text": "View catalog"})],
    ),
    "multi_product_button": _template(
        "kind_mpm",
        [
            {"type": "HEADER", "format": "TEXT", "text": "Our picks"},
            _body("Picked for you."),
            _buttons({"type": "MPM", "text": "View items"}),
        ],
    ),
    "request_contact_info": _template(
        "kind_contact_request",
        [_body("Share your contact to hear from us."), _buttons({"type": "REQUEST_CONTACT_INFO"})],
    ),
    "limited_time_offer": _template(
        "kind_offer",
        [
            _media_header("IMAGE"),
            {
                "type": "LIMITED_TIME_OFFER",
                "limited_time_offer": {"text": "Ends soon", "has_expiration": True},
            },
            _body("Deal for {{1}}.", "Ana"),
            _buttons(
                {"type": "COPY_CODE", "example": "SAVE20"},
                {"type": "URL", "text": "Book", "url": "https://shop.example/{{1}}", "example": ["x"]},
            ),
        ],
    ),
    "media_card_carousel": _template(
        "kind_media_carousel",
        [
            _body("Deals for {{1}}.", "Ana"),
            _cards(
                _media_header("IMAGE"),
                _body("Item {{1}}", "1"),
                _buttons({"type": "QUICK_REPLY", "text": "More"}),
                count=3,
            ),
        ],
    ),
    "product_card_carousel": _template(
        "kind_product_carousel",
        [
            _body("Rare succulents for sale! {{1}}, have a look.", "Pablo"),
            _cards(_PRODUCT_HEADER, _buttons(_SPM)),
        ],
    ),
    "product_card_carousel_url": _template(
        "kind_product_carousel_url",
        [
            _body("Picked for you."),
            _cards(
                _PRODUCT_HEADER,
                _buttons(
                    {"type": "URL", "text": "Buy", "url": "https://shop.example/{{1}}", "example": ["x"]}
                ),
            ),
        ],
    ),
}
