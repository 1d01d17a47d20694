"""The ``whatsapp`` connection form and its Test button, driven in headless Chromium (Airflow 3.3's UI).

A person's path: log in, Admin > Connections > Add Connection, pick "WhatsApp Marketing Messages", fill
the standard fields (the Graph API base URL, its port, the access token) and the provider's fields,
save; then press Test in the connections list. The success message must be the provider's own (number,
quality, onboarding, token expiry). The screenshot of the form with that message is the one in
``docs/connection.md``; set ``WAMM_DOCS_SCREENSHOT`` to a path to write it there too.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright's Python client; no browser is
downloaded.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deployment.airflow_deployment import PASSWORD, USERNAME, AirflowDeployment
from tests.deployment.conftest import require
from tests.deployment.services import CHROMIUM, PHONE_NUMBER_ID, SANDBOX_APP_SECRET, SANDBOX_TOKEN, WABA_ID

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONN_ID = "whatsapp_from_the_form"
SANDBOX_APP_ID = "300000000000001"  # the sandbox's app id: the Test button then checks the token's expiry


@pytest.fixture(scope="module")
def browser_page(deployment: AirflowDeployment) -> Iterator[Any]:
    """A logged-in page of the deployment's UI."""
    require("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(30_000)
            page.goto(f"{deployment.api_url}/auth/login")
            page.fill("input[name=username]", USERNAME)
            page.fill("input[name=password]", PASSWORD)
            page.keyboard.press("Enter")
            page.wait_for_url(f"{deployment.api_url}/")
            yield page
        finally:
            browser.close()


def fill_the_form(page: Any, deployment: AirflowDeployment, sandbox_port: int) -> None:
    """Add Connection: the standard fields and the provider's fields, as a person types them."""
    page.goto(f"{deployment.api_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(CONN_ID)
    dialog.get_by_role("combobox").first.click(force=True)  # the connection type (a react-select)
    page.keyboard.type("WhatsApp Marketing")
    page.keyboard.press("Enter")
    dialog.get_by_label("Graph API base URL").fill("http://127.0.0.1")
    dialog.get_by_label("Port", exact=True).fill(str(sandbox_port))
    dialog.get_by_label("Access token").fill(SANDBOX_TOKEN)
    dialog.get_by_text("Extra Fields", exact=True).click()
    fields = {  # the form names each input of the provider's fields ``element_<field>``
        "phone_number_id": PHONE_NUMBER_ID,
        "waba_id": WABA_ID,
        "app_id": SANDBOX_APP_ID,
        "app_secret": SANDBOX_APP_SECRET,
    }
    for name, value in fields.items():
        dialog.locator(f"input[name=element_{name}]").fill(value)
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden")


def test_the_form_saves_and_the_test_button_shows_the_providers_message(
    deployment: AirflowDeployment, browser_page: Any, tmp_path: pathlib.Path
) -> None:
    page, api = browser_page, deployment.require_api()
    sandbox_port = int(deployment.require_sandbox().url.rsplit(":", 1)[1])
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections") and r.request.method == "POST"):
        fill_the_form(page, deployment, sandbox_port)
    stored = api.call("GET", f"/connections/{CONN_ID}")
    assert (stored["conn_type"], stored["host"]) == ("whatsapp", "http://127.0.0.1")
    assert stored["port"] == sandbox_port
    extra = json.loads(stored["extra"])
    assert extra["phone_number_id"] == PHONE_NUMBER_ID and extra["app_secret"] == "***"  # stored, redacted

    page.reload()  # only the Test button's message on screen
    row = page.get_by_role("row").filter(has_text=CONN_ID)
    with page.expect_response(lambda r: r.url.endswith("/connections/test")) as answer:
        row.get_by_label("Test Connection").click()
    posted = json.loads(answer.value.request.post_data or "{}")
    result = answer.value.json()
    assert answer.value.status == 200 and result["status"] is True, result
    assert posted["port"] == sandbox_port and posted["password"] == "***"  # what the 3.3 UI sends
    message = result["message"]
    assert "Connected to +1 555-010-0001" in message and "quality GREEN" in message
    assert "ONBOARDED" in message and "token" in message and "not checked" not in message  # app_id set
    toast = page.get_by_text(message[:40], exact=False).first
    toast.wait_for()

    # The form again, with the Test button's message beside it: the picture in docs/connection.md.
    row.get_by_label("Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    dialog.get_by_label("Port", exact=True).wait_for()
    page.wait_for_timeout(500)
    shot = tmp_path / "connection-test.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000
    target = os.environ.get("WAMM_DOCS_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
    page.keyboard.press("Escape")


def test_the_test_endpoint_needs_a_stored_port_in_airflow_3_3(deployment: AirflowDeployment) -> None:
    """Why the form shows Port: Airflow 3.3's list posts ``port: 0`` for a connection stored without one,
    and the API server refuses to test a port that differs from the stored one. With a port stored, the
    same body tests the connection; the hook reads 0 and empty strings as unset."""
    api = deployment.require_api()
    connection = deployment.whatsapp_connection()
    body = {**connection, "password": "***", "port": 0, "login": "", "schema": "", "description": ""}
    body["extra"] = json.dumps({**json.loads(connection["extra"]), "app_secret": "***"})
    status, answer = api.test_connection(body)  # whatsapp_default was stored without a port
    assert status == 400 and "differs from the stored connection" in str(answer)

    api.put_connection({**connection, "connection_id": "whatsapp_port_0", "port": 0})
    status, answer = api.test_connection({**body, "connection_id": "whatsapp_port_0"})
    assert status == 200 and answer["status"] is True and "Connected to" in answer["message"], answer
