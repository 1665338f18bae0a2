"""results/explorer.html in a real browser (headless Chromium through selenium): the rows of the
committed run are filtered, sorted and drawn as the page promises, and the page needs no network."""
import io
import json
import re
from pathlib import Path

import pytest

from fmnist.report import explorer

RESULTS = Path(__file__).resolve().parent.parent / "results"
pytest.importorskip("selenium", reason="selenium (the test extra) drives the browser")
if not explorer.browser():
    pytest.skip("no chromedriver on PATH (Debian: apt-get install chromium chromium-driver)", allow_module_level=True)
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

SHOWN = "return [...document.querySelectorAll('#rows tbody tr')].map(tr => [...tr.cells].map(td => td.textContent))"


@pytest.fixture(scope="module")
def document():
    """The committed results, with edge_cnn's LiteRT rows also as a device's (whether or not a device
    is merged there now), so the machine is part of what the view filters and sorts."""
    found = json.loads((RESULTS / "benchmark.json").read_text())
    device = [{**r, "machine": "test-device", "latency_us": {**r["latency_us"], "p50": 3 * r["latency_us"]["p50"]}}
              for r in found["records"] if r["status"] == "ok" and (r["model"], r["runtime"]) == ("edge_cnn", "litert")]
    return {**found, "records": found["records"] + device}


@pytest.fixture
def browser(tmp_path, document):
    html = tmp_path / "explorer.html"
    html.write_text(explorer.page(document))
    driver = explorer.open_page(html, explorer.browser(), tmp_path / "profile")
    yield driver
    driver.quit()


def identity(r: dict) -> list[str]:
    return [r["model"], r["variant"], r["format"], r["runtime"], r.get("machine", "host")]


def test_the_page_is_self_contained(document):
    html = explorer.page(document)
    assert re.findall(r"https?://[^\s\"'`]+", html) == ["http://www.w3.org/2000/svg", "http://www.w3.org/1999/xhtml"]
    assert "default-src 'none'" in html and "<script src" not in html and "<link" not in html


def test_a_filter_and_a_sort_show_the_rows_of_benchmark_json_in_order(browser, document):
    ok = [r for r in document["records"] if r["status"] == "ok"]
    assert browser.find_element(By.ID, "count").text == f"{len(ok)} of {len(ok)} rows"
    Select(browser.find_element(By.ID, "filter-model")).select_by_value("edge_cnn")
    Select(browser.find_element(By.ID, "filter-runtime")).select_by_value("litert")
    browser.find_element(By.CSS_SELECTOR, 'th[data-key="p50"]').click()
    mine = [r for r in ok if r["model"] == "edge_cnn" and r["runtime"] == "litert"]
    assert len({r.get("machine", "host") for r in mine}) > 1  # the device's rows are in the view too
    fastest_first = sorted(mine, key=lambda r: r["latency_us"]["p50"])
    assert [row[:5] for row in browser.execute_script(SHOWN)] == [identity(r) for r in fastest_first]
    assert browser.find_element(By.ID, "count").text == f"{len(mine)} of {len(ok)} rows"
    browser.find_element(By.CSS_SELECTOR, 'th[data-key="p50"]').click()  # again: slowest first
    slowest_first = sorted(mine, key=lambda r: -r["latency_us"]["p50"])
    assert [row[:5] for row in browser.execute_script(SHOWN)] == [identity(r) for r in slowest_first]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart circle[data-i]")) == len(mine)


def test_hovering_a_point_shows_its_row_and_the_page_draws(browser, document, tmp_path):
    from PIL import Image
    Select(browser.find_element(By.ID, "filter-model")).select_by_value("mlp4x2")
    point = browser.find_elements(By.CSS_SELECTOR, "#chart circle[data-i]")[-1]  # drawn last: none covers it
    row = [r for r in document["records"] if r["status"] == "ok"][int(point.get_attribute("data-i"))]
    ActionChains(browser).move_to_element(point).perform()
    tip = browser.find_element(By.ID, "tip")
    assert tip.is_displayed() and f"model: {row['model']}" in tip.text and f"format: {row['format']}" in tip.text
    image = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    assert len(image.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50  # text, points and lines, not a blank page
