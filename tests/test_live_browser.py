"""The live view in a real browser (headless Chromium): a tiny ring run trains in a thread
while the page shows it and drives it."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("aiohttp", reason="the live view needs the gankit[live] extra")

from browser import chrome, save_screenshot  # noqa: E402,F401 - the fixture

from gankit import api  # noqa: E402
from gankit.config import build_config  # noqa: E402
from gankit.errors import GankitError  # noqa: E402

TINY = ["train.steps=1000000", "model.g_hidden=32", "model.d_hidden=32", "model.g_depth=2",
        "model.d_depth=2", "train.batch_size=64", "log.figures=false", "log.progress=false",
        "train.threads=1", "eval.metrics=[]", "log.ckpt_every=1000000"]


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    """(url, Live) of a ring run training in a thread; stopped (checkpoint) at the end."""
    from gankit.live.session import Live

    urls: list[str] = []
    live = Live(0, on_url=urls.append)
    errors: list[BaseException] = []

    def train():
        try:
            api.train(build_config("ring", TINY), tmp_path_factory.mktemp("live") / "run",
                      live=live)
        except GankitError as e:          # Interrupted: stopped by the test
            errors.append(e)

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not urls and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert urls, f"the live server did not start: {errors}"
    yield urls[0], live
    live.trainer.request_stop("the test")
    thread.join(30)
    assert not thread.is_alive()


def wait_for(predicate, seconds: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def number(driver, element_id: str) -> int:
    return int(driver.find_element("id", element_id).text or 0)


def heat(driver) -> str:
    return driver.execute_script("return document.getElementById('plane').toDataURL()")


def test_page_shows_training_progress(chrome, live_run):
    url, _ = live_run
    chrome.get(url)
    wait_for(lambda: number(chrome, "step") > 0, what="the step counter")
    first_step, first_heat = number(chrome, "step"), heat(chrome)
    wait_for(lambda: number(chrome, "step") > first_step + 20, what="more steps")
    wait_for(lambda: heat(chrome) != first_heat, what="the heat map to change")
    assert chrome.find_element("id", "status").text == "live"
    chrome.execute_script("window.__samePage = true")       # a reload would forget this
    save_screenshot(chrome, "live-ring")


def test_pause_stops_the_counter(chrome, live_run):
    chrome.find_element("id", "play").click()
    wait_for(lambda: chrome.find_element("id", "play").text == "play", what="paused")
    paused_at = number(chrome, "step")
    time.sleep(1.0)
    assert number(chrome, "step") == paused_at


def test_one_d_step_advances_the_d_count_by_one(chrome, live_run):
    before_d, before_g = number(chrome, "dcount"), number(chrome, "gcount")
    step = number(chrome, "step")
    chrome.find_element("id", "stepD").click()
    wait_for(lambda: number(chrome, "dcount") != before_d, what="the D count")
    time.sleep(0.5)                      # nothing else moves while paused
    assert number(chrome, "dcount") == before_d + 1
    assert number(chrome, "gcount") == before_g and number(chrome, "step") == step


def test_objective_switch_continues_without_reload(chrome, live_run):
    from selenium.webdriver.support.ui import Select

    Select(chrome.find_element("id", "objective")).select_by_value("hinge")
    wait_for(lambda: chrome.find_element("id", "objname").text == "hinge", what="the switch")
    chrome.find_element("id", "play").click()
    step = number(chrome, "step")
    wait_for(lambda: number(chrome, "step") > step + 10, what="training to go on")
    assert chrome.execute_script("return window.__samePage === true")
    assert live_run[1].trainer.cfg.objective.name == "hinge"
    assert "critic D(x)" in chrome.find_element("id", "planeCaption").text   # raw hinge critic
    save_screenshot(chrome, "live-ring-hinge")
