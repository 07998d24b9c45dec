"""The README's picture of seq2seq-serve: start it on the given checkpoints, translate a sentence
in headless Chromium, point at one target word and save the page as a PNG.

    python scripts/serve_screenshot.py runs/demo/attention/best.pt runs/demo/fixed_context/best.pt \\
        --sentence "Mary see a big dog in the park yesterday" --hover 狗 --out docs/serve.png

Needs the [serve] extra, Playwright (pip install playwright) and Debian's chromium.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--sentence", default="Tom chase Jerry")
    p.add_argument("--hover", help="the target word to point at")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("docs/serve.png"))
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "seq2seq-serve"),
            f"checkpoints=[{','.join(args.checkpoints)}]",
            f"port={port}",
            "device=cpu",
        ]  # fmt: skip
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(url + "health", timeout=2) as r:
                    if json.load(r)["status"] == "ok":
                        break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1200, "height": 640}, device_scale_factor=1)
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]")
            page.fill("#text", args.sentence)
            page.fill("#beam", str(args.beam))
            page.click("#go")
            page.wait_for_selector(".panel .translation")
            if args.hover:
                page.hover(f"svg.heatmap text.tgt >> text={args.hover}")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
        print(f"wrote {args.out}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
