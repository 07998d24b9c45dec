"""Screenshots of seq2seq-serve's page views (the ones in docs/commands.md), taken in headless
Chromium through Playwright from a running server:

    seq2seq-serve 'checkpoints=[runs/toy-attention/best.pt,runs/toy-transformer/best.pt]' &
    python scripts/page_screenshots.py http://127.0.0.1:8000/ docs --sentence "Lucy meet a horse tomorrow"

Needs the dev extra (Playwright) and Debian's chromium (and fonts-noto-cjk for Chinese labels).
The first model is drawn for the beam, "what if" and gold views, the first Transformer for the
layers view; the training view is the first run the server has attention examples for.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def translate(page: Page, text: str, beam: int) -> None:
    page.fill("#text", text)
    page.fill("#beam", str(beam))
    page.click("#go")
    page.wait_for_function("!document.getElementById('go').disabled", timeout=120_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the page's address, e.g. http://127.0.0.1:8000/")
    parser.add_argument("out", type=Path, help="the folder to write serve-*.png into")
    parser.add_argument("--sentence", default="Lucy meet a horse tomorrow", help="the sentence to translate")
    parser.add_argument("--gold", default="1", help="the index of the gold split's sentence to show")
    parser.add_argument("--step", type=int, default=2, help="the training view's validation (from 0)")
    parser.add_argument("--chromium", default=os.environ.get("SEQ2SEQ_CHROMIUM") or shutil.which("chromium"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
        page.goto(args.url)
        page.wait_for_selector("body[data-ready=true]", timeout=60_000)
        translate(page, args.sentence, 5)
        first = page.locator(".sentence .panel").first
        first.locator("details.beam summary").click()
        first.screenshot(path=str(args.out / "serve-beam.png"))
        first.locator("details.beam summary").click()
        first.locator(".words button").nth(1).click()
        first.screenshot(path=str(args.out / "serve-whatif.png"))
        transformer = page.locator(".sentence .panel:has(select.map)").first
        if transformer.count():
            transformer.locator("select.map").select_option("encoder")
            transformer.locator("select.layer").select_option("1")
            transformer.locator("select.head").select_option("0")
            transformer.screenshot(path=str(args.out / "serve-layers.png"))
        if page.locator("#gold").is_visible():
            page.select_option("#gold-sentence", args.gold)
            page.click("#gold-go")
            page.locator("#gold-results .panel").first.wait_for(timeout=60_000)
            page.locator("#gold").screenshot(path=str(args.out / "serve-gold.png"))
        if page.locator("#training").is_visible():
            page.locator("#training-step").fill(str(args.step))
            page.locator("#training").screenshot(path=str(args.out / "serve-training.png"))
        browser.close()
    print("wrote", ", ".join(sorted(p.name for p in args.out.glob("serve-*.png"))))


if __name__ == "__main__":
    main()
