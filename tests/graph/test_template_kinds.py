"""Every template kind through preflight and validation: what one demands, the other accepts.

Preflight (:func:`check_components`) once demanded a ``product`` (and a ``gif``) header parameter that
validation refused; each kind here is checked both ways, with the sample components and with the
components a user builds with the builders or the flat personalisation syntax.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_wamm.graph import (
    PayloadError,
    TemplateSpec,
    body_component,
    build_marketing_message,
    carousel_card,
    carousel_component,
    catalog_button,
    check_components,
    components_from_spec,
    example_components,
    gif_param,
    header_component,
    product_param,
    url_button,
    validate_marketing_message,
)
from tests.graph.template_kinds import KINDS

CATALOG = "194836987003835"


def send(template: dict[str, Any], components: list[dict[str, Any]]) -> dict[str, Any]:
    payload = build_marketing_message(
        to="4915123456789",
        template_name=template["name"],
        language=template["language"],
        components=components,
    )
    validate_marketing_message(payload)
    return payload


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_what_preflight_demands_validation_accepts(kind: str) -> None:
    template = KINDS[kind]
    components = example_components(template)
    assert check_components(components, template) == []
    payload = send(template, components)
    assert check_components(payload["template"].get("components", []), template) == []


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_spec_of_every_kind_says_what_to_send(kind: str) -> None:
    spec = TemplateSpec.from_api(KINDS[kind])
    assert spec.marketing_problems() == []
    described = spec.describe()
    assert "spm" not in described and "request_contact_info" not in described


def test_single_product_template() -> None:
    template = KINDS["single_product"]
    spec = TemplateSpec.from_api(template)
    assert spec.header_format == "PRODUCT" and spec.named
    assert [(b.type, b.sub_type, b.required) for b in spec.buttons] == [("SPM", None, False)]
    components = [
        header_component(product_param("nqryix03ez", CATALOG)),
        body_component({"code": "25OFF", "percent": "25%"}),
    ]
    assert check_components(components, template) == []
    payload = send(template, components)
    assert payload["template"]["components"][0] == {
        "type": "header",
        "parameters": [
            {"type": "product", "product": {"product_retailer_id": "nqryix03ez", "catalog_id": CATALOG}}
        ],
    }
    missing = [body_component({"code": "25OFF", "percent": "25%"})]
    assert any("header is PRODUCT" in p for p in check_components(missing, template))
    image = [header_component({"type": "image", "image": {"link": "https://x.example/a.jpg"}}), *missing]
    assert any("send one product parameter, got 'image'" in p for p in check_components(image, template))
    view = {"type": "button", "sub_type": "spm", "index": "0"}
    assert any("SPM and takes no parameter" in p for p in check_components([*components, view], template))


def test_gif_header() -> None:
    template = KINDS["gif_header"]
    components = [header_component(gif_param(link="https://cdn.example/a.mp4")), body_component(["Ana"])]
    assert check_components(components, template) == []
    assert send(template, components)["template"]["components"][0]["parameters"] == [
        {"type": "gif", "gif": {"link": "https://cdn.example/a.mp4"}}
    ]
    assert gif_param(id="123")["gif"] == {"id": "123"}
    with pytest.raises(PayloadError):
        gif_param()
    with pytest.raises(PayloadError):
        gif_param(id="1", link="https://cdn.example/a.mp4")


def test_catalog_button_without_parameters() -> None:
    template = KINDS["catalog_button"]
    button = catalog_button(0)
    assert button == {"type": "button", "sub_type": "catalog", "index": "0"}
    components = [body_component(["Ana"]), button]
    assert check_components(components, template) == []
    send(template, components)
    with_thumbnail = [body_component(["Ana"]), catalog_button(0, "2lc20305pt")]
    assert send(template, with_thumbnail)["template"]["components"][1]["parameters"] == [
        {"type": "action", "action": {"thumbnail_product_retailer_id": "2lc20305pt"}}
    ]
    upper = {"type": "button", "sub_type": "CATALOG", "index": 0}  # as Meta's example spells it
    assert (
        send(template, [body_component(["Ana"]), upper])["template"]["components"][1]["sub_type"] == "catalog"
    )
    # Other buttons still need their parameter.
    with pytest.raises(PayloadError, match="is required for a url button"):
        send(template, [{"type": "button", "sub_type": "url", "index": 0}])


def test_request_contact_info_takes_nothing_at_send() -> None:
    template = KINDS["request_contact_info"]
    assert check_components([], template) == []
    send(template, [])
    sent = {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": []}
    assert any("REQUEST_CONTACT_INFO and takes no parameter" in p for p in check_components([sent], template))


def product_card(i: int, retailer_id: str) -> dict[str, Any]:
    return carousel_card(i, [header_component(product_param(retailer_id, CATALOG))])


@pytest.mark.parametrize("count", [1, 2, 3, 10])
def test_product_carousel_sends_one_to_ten_cards(count: int) -> None:
    template = KINDS["product_card_carousel"]
    assert TemplateSpec.from_api(template).product_carousel
    components = [
        body_component(["Pablo"]),
        carousel_component([product_card(i, f"sku-{i}") for i in range(count)]),
    ]
    assert check_components(components, template) == []
    send(template, components)


def test_product_carousel_limits() -> None:
    template = KINDS["product_card_carousel"]
    eleven = [product_card(i % 10, f"sku-{i}") for i in range(11)]
    components = [body_component(["Pablo"]), {"type": "carousel", "cards": eleven}]
    assert any("1 to 10 product cards, got 11" in p for p in check_components(components, template))
    with pytest.raises(PayloadError, match="1 to 10 cards"):
        send(template, components)
    image_card = carousel_card(
        0, [header_component({"type": "image", "image": {"link": "https://x.example/a.jpg"}})]
    )
    components = [body_component(["Pablo"]), carousel_component([image_card])]
    assert any("card 0 header" in p for p in check_components(components, template))
    bad_index = {"card_index": 10, "components": [header_component(product_param("a", CATALOG))]}
    components = [body_component(["Pablo"]), {"type": "carousel", "cards": [bad_index]}]
    assert any("card_index 10 is out of range" in p for p in check_components(components, template))


def test_product_carousel_with_url_buttons() -> None:
    template = KINDS["product_card_carousel_url"]
    cards = [
        carousel_card(i, [header_component(product_param(f"sku-{i}", CATALOG)), url_button(0, f"sku-{i}")])
        for i in range(4)
    ]
    components = [carousel_component(cards)]
    assert check_components(components, template) == []
    send(template, components)
    no_url = copy.deepcopy(components)
    del no_url[0]["cards"][3]["components"][1]
    assert any("card 3 button 0" in p for p in check_components(no_url, template))


def test_media_carousel_still_sends_the_templates_cards() -> None:
    template = KINDS["media_card_carousel"]
    assert not TemplateSpec.from_api(template).product_carousel
    components = example_components(template)
    carousel = next(c for c in components if c["type"] == "carousel")
    carousel["cards"].append({**copy.deepcopy(carousel["cards"][0]), "card_index": 3})
    problems = check_components(components, template)
    assert any("3 cards, got 4" in p for p in problems)
    assert any("card_index 3 does not exist" in p for p in problems)


FLAT: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "single_product": lambda: components_from_spec(
        header={"type": "product", "product_retailer_id": "nqryix03ez", "catalog_id": int(CATALOG)},
        body={"code": "25OFF", "percent": 25},
    ),
    "gif_header": lambda: components_from_spec(
        header={"type": "gif", "link": "https://cdn.example/a.mp4"}, body=["Ana"]
    ),
    "catalog_button": lambda: components_from_spec(body=["Ana"], buttons=[{"type": "catalog", "index": 0}]),
    "request_contact_info": components_from_spec,
}


@pytest.mark.parametrize("kind", sorted(FLAT))
def test_the_flat_syntax_builds_every_new_kind(kind: str) -> None:
    template = KINDS[kind]
    components = FLAT[kind]()
    assert check_components(components, template) == []
    send(template, components)


def test_flat_product_parameters() -> None:
    (header,) = components_from_spec(header={"type": "product", "product_retailer_id": 42, "catalog_id": "7"})
    assert header["parameters"] == [
        {"type": "product", "product": {"product_retailer_id": "42", "catalog_id": "7"}}
    ]
    (button,) = components_from_spec(buttons=[{"type": "catalog", "index": "1"}])
    assert "parameters" not in button
    for bad in (
        {"type": "product", "product_retailer_id": "a"},
        {"type": "product", "product_retailer_id": "a", "catalog_id": "cat-1"},
        {"type": "product", "product_retailer_id": "", "catalog_id": "1"},
        {"type": "product", "product_retailer_id": "a" * 101, "catalog_id": "1"},
    ):
        with pytest.raises(PayloadError):
            components_from_spec(header=bad)
    with pytest.raises(PayloadError, match=r"body\.parameters\[0\]\.type"):
        body_component([{"type": "product", "product_retailer_id": "a", "catalog_id": "1"}])


def test_message_send_ttl_seconds_is_read() -> None:
    assert TemplateSpec.from_api(KINDS["image_header"]).message_send_ttl_seconds is None
    for raw, expected in (
        (86400, 86400),
        ("43200", 43200),
        (None, None),
        (True, None),
        ("soon", None),
        (-1, -1),
    ):
        entry = {**KINDS["image_header"], "message_send_ttl_seconds": raw}
        assert TemplateSpec.from_api(entry).message_send_ttl_seconds == expected


def test_the_personaliser_accepts_the_new_kinds() -> None:
    from airflow_provider_wamm.campaign.personalise import Personaliser

    product = Personaliser(
        header={"type": "product", "product_retailer_id": "{sku}", "catalog_id": "{catalog}"},
        body_parameters={"code": "{code}", "percent": "{percent}"},
    )
    template = KINDS["single_product"]
    assert check_components(product.sample_components(), template) == []
    row = {"sku": "nqryix03ez", "catalog": int(CATALOG), "code": "25OFF", "percent": "25%"}
    assert check_components(send(template, product.render(row))["template"]["components"], template) == []

    gif = Personaliser(
        header={"type": "gif", "link": "https://cdn.example/{slug}.mp4"}, body_parameters=["{name}"]
    )
    assert check_components(gif.render({"slug": "a", "name": "Ana"}), KINDS["gif_header"]) == []
    catalog = Personaliser(body_parameters=["{name}"], buttons=[{"type": "catalog", "index": 0}])
    components = catalog.render({"name": "Ana"})
    assert components[-1] == {"type": "button", "sub_type": "catalog", "index": "0"}
    send(KINDS["catalog_button"], components)
