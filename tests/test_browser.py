"""The page in a real browser: headless Chromium (Debian's package, driven by Playwright, which
downloads no browser of its own here) loads seq2seq-serve's page, translates "Tom chase Jerry",
and lights up "Jerry" when the pointer is on 杰瑞. Skipped, saying why, where Chromium or
Playwright is missing (.ci/run installs both)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="seq2seq-serve's extra (pip install 'seq2seq-attention[serve]')")
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
from serving import served, train_tiny  # noqa: E402

CHROMIUM = os.environ.get("SEQ2SEQ_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no Chromium here: the browser test needs Debian's chromium package (apt-get install chromium; "
        ".ci/run installs it)",
        allow_module_level=True,
    )
FLAGS = [  # headless, as root, and quiet on a machine without network
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    checkpoint = train_tiny(tmp_path_factory.mktemp("browser"))
    with served(f"checkpoint={checkpoint}", "device=cpu") as base:
        yield base


@pytest.fixture(scope="module")
def page(url: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            tab = browser.new_page(viewport={"width": 1100, "height": 700})
            tab.goto(url)
            tab.wait_for_selector("body[data-ready=true]", timeout=30_000)
            yield tab
        finally:
            browser.close()


def translate(page, text: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("#text", text)
    page.fill("#beam", "3")
    page.click("#go")
    page.wait_for_function("!document.getElementById('go').disabled", timeout=60_000)


def test_the_page_translates_and_shows_where_each_word_looked(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    translate(page, "Tom chase Jerry")
    assert page.inner_text(".panel .translation") == "汤姆 追逐 杰瑞"
    assert page.locator(".panel svg.heatmap rect.cell").count() == 3 * 4  # 3 target words x 3 source words + EOS
    assert page.locator("svg.heatmap text.tgt").all_text_contents() == ["汤姆", "追逐", "杰瑞"]
    assert page.locator("svg.heatmap text.src").all_text_contents() == ["Tom", "chase", "Jerry", "</s>"]
    page.hover("svg.heatmap text.tgt >> text=杰瑞")
    assert "Jerry" in page.locator("svg.heatmap text.src.hl").all_text_contents()
    assert page.locator("svg.heatmap text.tgt.active").text_content() == "杰瑞"
    page.hover("svg.heatmap text.tgt >> text=汤姆")
    assert page.locator("svg.heatmap text.src.hl").all_text_contents() == ["Tom"]
    shot = Path(os.environ.get("SEQ2SEQ_SCREENSHOT") or tmp_path / "page.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_a_fixed_start_steers_the_translation_on_the_page(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#prefix", "杰瑞")
    try:
        translate(page, "Tom chase Jerry")
        assert page.inner_text(".panel .translation").startswith("杰瑞")
        assert page.locator("svg.heatmap text.tgt").all_text_contents()[0] == "杰瑞"  # its row: where it looked
    finally:
        page.fill("#prefix", "")


def test_the_page_shows_markup_as_text_and_never_runs_it(page) -> None:  # type: ignore[no-untyped-def]
    attack = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script> Tom'
    translate(page, attack)
    assert page.inner_text(".sentence .source") == attack
    assert page.evaluate("window.pwned") is None
    assert page.locator(".panel img, .panel script").count() == 0


def test_a_server_error_is_shown_on_the_page(page) -> None:  # type: ignore[no-untyped-def]
    translate(page, "Tom " * 400)  # over the server's 1,000 characters
    assert "at most 1000" in page.inner_text("#status")
    assert page.locator("#status.error").count() == 1
