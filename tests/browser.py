"""Headless Chromium for browser tests (Selenium with Debian's chromium and chromedriver).

``chrome``: a module-scoped fixture yielding a webdriver; it skips with one clear reason when
the browser or the driver is missing (``.ci/run`` installs them as root).
``save_screenshot(driver, name)``: keeps a PNG in ``$GANKIT_TEST_ARTIFACTS`` (default:
``test-artifacts/`` in the repository root, git-ignored).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MISSING = "chromium/chromedriver not found: run apt-get install chromium chromium-driver"


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("GANKIT_TEST_ARTIFACTS") or REPO / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_screenshot(driver, name: str) -> Path:
    """Save the driver's current page as ``<artifacts>/<name>.png``; returns the path."""
    path = artifacts_dir() / f"{Path(name).stem}.png"
    driver.save_screenshot(str(path))
    return path


@pytest.fixture(scope="module")
def chrome():
    """A headless Chromium webdriver (1400x1000 window), quit after the module."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install -c constraints.txt -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not browser or not driver_path:
        pytest.skip(MISSING)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
