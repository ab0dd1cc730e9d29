"""The HTML report in a real headless browser: it renders, the blind-spot filter works, no console errors."""

from __future__ import annotations

import shutil

import pytest

from tests.test_asymmetry_unit import test_report_is_built_from_a_store_and_escapes_model_text as make_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_report_renders_and_filters_in_chromium(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    make_report(tmp_path)
    report = tmp_path / "report.html"
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto(report.as_uri())
        assert page.locator("h1").inner_text()
        assert page.locator("#headline tr").count() >= 3        # header + 2 models
        assert page.locator("#trust-table tr").count() >= 3     # the first question, per model
        assert page.locator("#trust").is_visible()
        rows = page.locator("#blind-spots tbody tr")
        total = rows.count()
        assert total >= 1
        assert page.evaluate("() => window.__xss === undefined")
        imgs = page.locator("img")
        assert imgs.count() >= 2 and all(imgs.nth(i).evaluate("i => i.naturalWidth > 0") for i in range(imgs.count()))
        page.fill("#bs-filter", "no-such-text-anywhere")
        assert page.locator("#blind-spots tbody tr:visible").count() == 0
        page.fill("#bs-filter", "weak")
        visible = page.locator("#blind-spots tbody tr:visible").count()
        assert 0 < visible <= total
        page.fill("#bs-filter", "")
        assert page.locator("#blind-spots tbody tr:visible").count() == total
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert not errors, errors
    assert not requests, f"the report must be self-contained, but it requested {requests}"
    assert (tmp_path / "report.png").stat().st_size > 10_000
