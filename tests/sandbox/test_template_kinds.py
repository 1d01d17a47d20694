"""The sandbox knows every template kind and accepts what the provider builds for each.

The sandbox reads Meta's rules on its own (it never imports the provider's validation); these tests
load the same templates into both and check that the sandbox accepts the provider's payloads, and
refuses what Meta refuses.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from airflow_provider_wamm.graph import (
    body_component,
    build_marketing_message,
    carousel_card,
    carousel_component,
    example_components,
    header_component,
    product_param,
)
from airflow_provider_wamm.sandbox import Sandbox, SandboxTemplate, default_templates
from tests.graph.template_kinds import KINDS
from tests.sandbox.conftest import Graph, message

CATALOG = "194836987003835"


def provider_payload(
    template: dict[str, Any], components: list[dict[str, Any]], **kwargs: Any
) -> dict[str, Any]:
    return build_marketing_message(
        to=kwargs.pop("to", "4915123456789"),
        template_name=template["name"],
        language=template["language"],
        components=components,
        **kwargs,
    )


@pytest.fixture
def kinds_sandbox(sandbox: Sandbox) -> Sandbox:
    """The sandbox with its defaults and one template of every kind."""
    loaded = {t["name"]: SandboxTemplate.from_meta(t) for t in KINDS.values()}
    sandbox.configure(templates={**default_templates(), **loaded})
    return sandbox


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_is_accepted(kinds_sandbox: Sandbox, graph: Graph, kind: str, spec_validator: Any) -> None:
    template = KINDS[kind]
    response = graph.send(provider_payload(template, example_components(template)))
    assert response.status_code == 200, response.text
    assert spec_validator(response.json(), "MarketingMessageResponsePayload") == []


def test_templates_keep_their_kind_through_metas_format() -> None:
    for template in KINDS.values():
        copy_ = SandboxTemplate.from_meta(template)
        assert SandboxTemplate.from_meta(copy_.to_meta()) == copy_
    carousel = SandboxTemplate.from_meta(KINDS["product_card_carousel"])
    assert len(carousel.cards) == 2
    assert SandboxTemplate.from_meta(KINDS["single_product"]).header_format == "PRODUCT"


def product_card(i: int) -> dict[str, Any]:
    return carousel_card(i, [header_component(product_param(f"sku-{i}", CATALOG))])


def default_send(name: str, components: list[dict[str, Any]]) -> dict[str, Any]:
    return message(template=name, components=components)


@pytest.mark.parametrize(
    ("name", "components"),
    [
        (
            "product_spotlight",
            [
                header_component(product_param("nqryix03ez", CATALOG)),
                body_component({"code": "25OFF", "percent": "25%"}),
            ],
        ),
        (
            "gif_teaser",
            [
                {
                    "type": "header",
                    "parameters": [{"type": "gif", "gif": {"link": "https://cdn.example/a.mp4"}}],
                },
                body_component(["Ana"]),
            ],
        ),
        (
            "catalog_browse",
            [body_component(["Ana"]), {"type": "button", "sub_type": "catalog", "index": "0"}],
        ),
        (
            "catalog_browse",
            [
                body_component(["Ana"]),
                {
                    "type": "button",
                    "sub_type": "CATALOG",
                    "index": 0,
                    "parameters": [
                        {"type": "action", "action": {"thumbnail_product_retailer_id": "2lc20305pt"}}
                    ],
                },
            ],
        ),
        ("contact_request", []),
        ("product_carousel", [body_component(["Pablo"]), carousel_component([product_card(0)])]),
        (
            "product_carousel",
            [body_component(["Pablo"]), carousel_component([product_card(i) for i in range(10)])],
        ),
    ],
)
def test_default_templates_of_each_kind(graph: Graph, name: str, components: list[dict[str, Any]]) -> None:
    response = graph.send(default_send(name, components))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("name", "components", "code", "words"),
    [
        ("product_spotlight", [body_component({"code": "1", "percent": "2"})], 132000, "header"),
        (
            "product_spotlight",
            [
                header_component({"type": "image", "image": {"link": "https://cdn.example/a.jpg"}}),
                body_component({"code": "1", "percent": "2"}),
            ],
            132012,
            "PRODUCT",
        ),
        (
            "product_spotlight",
            [
                {
                    "type": "header",
                    "parameters": [{"type": "product", "product": {"product_retailer_id": "a"}}],
                },
                body_component({"code": "1", "percent": "2"}),
            ],
            100,
            "catalog_id",
        ),
        ("product_carousel", [body_component(["Pablo"])], 132000, "carousel"),
        (
            "product_carousel",
            [
                body_component(["Pablo"]),
                {"type": "carousel", "cards": [product_card(i % 10) for i in range(11)]},
            ],
            132000,
            "number of cards",
        ),
        (
            "product_carousel",
            [body_component(["Pablo"]), {"type": "carousel", "cards": [product_card(1), product_card(1)]}],
            100,
            "card_index",
        ),
        (
            "product_carousel",
            [
                body_component(["Pablo"]),
                carousel_component(
                    [carousel_card(0, [header_component({"type": "image", "image": {"id": "1"}})])]
                ),
            ],
            132012,
            "cards[0].header",
        ),
        (
            "spring_sale",
            [
                *copy.deepcopy(message()["template"]["components"]),
                {"type": "carousel", "cards": [{"card_index": 0, "components": []}]},
            ],
            132000,
            "no carousel",
        ),
    ],
)
def test_refusals(graph: Graph, name: str, components: list[dict[str, Any]], code: int, words: str) -> None:
    response = graph.send(default_send(name, components))
    error = graph.error(response)
    assert (error["code"], words in error["error_data"]["details"]) == (code, True), error


def test_media_carousel_sends_the_templates_cards(kinds_sandbox: Sandbox, graph: Graph) -> None:
    template = KINDS["media_card_carousel"]
    components = example_components(template)
    carousel = next(c for c in components if c["type"] == "carousel")
    carousel["cards"] = carousel["cards"][:2]
    error = graph.error(graph.send(provider_payload(template, components)))
    assert error["code"] == 132000 and "number of cards" in error["error_data"]["details"]
