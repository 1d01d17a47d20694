"""Meta's OpenAPI spec, loaded once per session from the shared folder beside the checkout."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pytest

SPEC_NAME = "business-messaging-api_v23.0.yaml"


def _spec_path() -> pathlib.Path | None:
    env = os.environ.get("WAMM_SPEC_PATH")
    if env:
        return pathlib.Path(env)
    root = pathlib.Path(__file__).resolve().parents[2]
    candidate = root.parent / "shared" / "spec" / SPEC_NAME
    return candidate if candidate.exists() else None


@pytest.fixture(scope="session")
def openapi_spec() -> dict[str, Any]:
    """The parsed spec; tests using it skip with a reason when the shared folder is absent."""
    path = _spec_path()
    if path is None or not path.exists():
        pytest.skip(f"Meta's OpenAPI spec ({SPEC_NAME}) is not beside the checkout in ../shared/spec/")
    import yaml

    with path.open("rb") as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@pytest.fixture(scope="session")
def spec_validator(openapi_spec: dict[str, Any]) -> Any:
    """A ``validate(instance, schema_name)`` callable over the spec's component schemas."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    uri = "urn:meta:business-messaging-api"
    registry: Registry = Registry().with_resource(uri, Resource(openapi_spec, specification=DRAFT202012))

    def validate(instance: Any, schema_name: str) -> list[str]:
        validator = Draft202012Validator(
            {"$ref": f"{uri}#/components/schemas/{schema_name}"}, registry=registry
        )
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)
        ]

    return validate
