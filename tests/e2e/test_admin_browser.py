"""The admin page in a real browser (headless Chromium driven by selenium) against a running server: the
tree renders, a crash and its restart appear without reloading the page, and the toggle of a backend takes
it out of rotation. Set ACTORPROXY_SCREENSHOT=docs/admin-page.png to save what the page looks like.

The browser's calls block, so they run in a thread while the server serves in the test's trio loop.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
import trio
from adminrun import TOKEN, AdminRunning, admin_yaml, run_admin
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from upstream import Upstream

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
# The page promises to follow a change within a second; the slack is for a loaded CI machine.
WAIT = 5.0

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None, reason="needs chromium and chromedriver (.ci/run installs them)"
)

T = TypeVar("T")


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the module, isolated from any profile and from the network."""
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for argument in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1440,1000",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(argument)
        driver = webdriver.Chrome(options=options, service=ChromeService(CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


async def in_thread(call: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(call)


async def wait_for(browser: webdriver.Chrome, condition: Callable[[webdriver.Chrome], Any]) -> Any:
    """Wait for `condition`, looking again if the page redrew what it looked at (it follows a live state)."""
    wait = WebDriverWait(
        browser, WAIT, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException]
    )
    return await in_thread(lambda: wait.until(condition))


async def click(browser: webdriver.Chrome, selector: str) -> None:
    """Click what `selector` finds, again if the page redrew it in between (it follows a live state)."""

    def clicked(b: webdriver.Chrome) -> bool:
        b.find_element(By.CSS_SELECTOR, selector).click()
        return True

    await wait_for(browser, clicked)


def row(path: str) -> str:
    return f'#tree li[data-path="{path}"]'


async def test_the_page_follows_the_tree_and_disables_a_backend(
    browser: webdriver.Chrome, nursery: trio.Nursery, upstreams: list[Upstream]
) -> None:
    running: AdminRunning = await run_admin(
        nursery, admin_yaml([upstreams[0].port, upstreams[1].port], health_frequency=0.5)
    )
    async with httpx.AsyncClient(base_url=running.proxy_url) as client:
        for _ in range(6):
            await client.get("/echo")

    await in_thread(lambda: browser.get(running.admin.url))
    # The tree renders: the services' supervisors and the load balancer, with their state.
    state = await wait_for(
        browser,
        lambda b: b.find_element(By.CSS_SELECTOR, row("/upstream api/lb")).get_attribute("data-state"),
    )
    assert state == "running"
    names = await wait_for(
        browser, lambda b: [e.text for e in b.find_elements(By.CSS_SELECTOR, "#tree .name")]
    )
    assert {"edge", "connections", "listener-0", "upstream api", "lb", "admin"} <= set(names)
    await wait_for(
        browser, lambda b: b.find_element(By.CSS_SELECTOR, "#live").get_attribute("data-state") == "live"
    )

    # A crash and the restart show up without reloading the page (the marker would be gone after one).
    await in_thread(lambda: browser.execute_script("window.notReloaded = true"))
    await (await running.load_balancer_actor()).tell("a message the load balancer does not understand")
    await wait_for(
        browser,
        lambda b: (
            b.find_element(By.CSS_SELECTOR, row("/upstream api/lb")).get_attribute("data-restarts") == "1"
        ),
    )
    assert await in_thread(lambda: browser.execute_script("return window.notReloaded === true"))
    await wait_for(browser, lambda b: "restarted" in b.find_element(By.ID, "events").text)
    events = await wait_for(browser, lambda b: b.find_element(By.ID, "events").text)
    assert "crashed" in events and "/upstream api/lb" in events

    # The toggle asks for the token once, sends it in a header, and the backend leaves rotation.
    first = f"127.0.0.1:{upstreams[0].port}"
    toggle = f'tr[data-backend="{first}"] button.toggle'
    await click(browser, toggle)
    token_input = await wait_for(browser, lambda b: b.find_element(By.ID, "token-input"))
    await wait_for(browser, lambda b: token_input.is_displayed())
    await in_thread(lambda: token_input.send_keys(TOKEN))
    await in_thread(lambda: browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click())
    await wait_for(
        browser,
        lambda b: (
            b.find_element(By.CSS_SELECTOR, f'tr[data-backend="{first}"]').get_attribute("data-enabled")
            == "false"
        ),
    )
    badge = await wait_for(
        browser, lambda b: b.find_element(By.CSS_SELECTOR, f'tr[data-backend="{first}"] .badge').text
    )
    assert badge == "disabled"
    async with httpx.AsyncClient(base_url=running.proxy_url) as client:
        served = Counter([(await client.get("/echo")).json()["upstream"] for _ in range(4)])
    assert served == Counter({"up1": 4})

    # The rates plot has points by now (the monitor samples every second).
    await wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, '[data-service="edge"] polyline'))
    screenshot = os.environ.get("ACTORPROXY_SCREENSHOT")
    if screenshot:
        await in_thread(lambda: browser.save_screenshot(screenshot))
