"""Headless Chromium for browser tests (Selenium with the system chromedriver).

``chrome``: a module-scoped fixture yielding a webdriver; the test skips with one clear
reason when chromium or chromedriver is missing (``.ci/run`` installs them as root).
``save_screenshot(driver, name)`` keeps a PNG in ``$GANKIT_TEST_ARTIFACTS`` (default:
``test-artifacts/`` in the repository, git-ignored).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MISSING = "chromium/chromedriver not found: run apt-get install chromium chromium-driver"


@pytest.fixture(scope="module")
def chrome():
    """A headless Chromium webdriver (skips when the browser or its driver is missing)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not browser or not driver_path:
        pytest.skip(MISSING)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def save_screenshot(driver, name: str) -> Path:
    """Save the page as ``<artifacts>/<name>.png``; returns the path."""
    folder = Path(os.environ.get("GANKIT_TEST_ARTIFACTS", REPO / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
