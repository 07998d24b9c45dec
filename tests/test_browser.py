"""The page in a real browser: headless Chromium (Debian's package, driven by Playwright, which
downloads no browser of its own here) loads seq2seq-serve's page over a tiny attention model and a
tiny Transformer, translates "Tom chase Jerry" and lights up "Jerry" when the pointer is on 杰瑞;
switches the Transformer's map, layer and head; moves the training slider; hovers a
gold-outlined cell; opens the beam tree; and replaces an output word and reads the new
translation. Skipped, saying why, where Chromium or Playwright is missing (.ci/run installs
both). With ``SEQ2SEQ_SCREENSHOTS=DIR`` each view's screenshot is written there (the README's)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="seq2seq-serve's extra (pip install 'seq2seq-attention[serve]')")
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
from serving import served, train_tiny, train_tiny_transformer  # noqa: E402

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


RNN, TRANSFORMER = ".panel[data-model=run]", ".panel[data-model=transformer]"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("browser")
    rnn = train_tiny(folder, examples=True)  # with attention examples and gold alignments
    transformer = train_tiny_transformer(folder)
    with served(f"checkpoints=[{rnn},{transformer}]", "device=cpu") as base:
        yield base


def screenshot(page, name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The page as it is now, into SEQ2SEQ_SCREENSHOTS (or the test's folder); never empty."""
    folder = Path(os.environ.get("SEQ2SEQ_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert (folder / f"{name}.png").stat().st_size > 10_000


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
    rnn = page.locator(RNN)
    assert rnn.locator(".translation").inner_text() == "汤姆 追逐 杰瑞"
    assert rnn.locator("svg.heatmap rect.cell").count() == 3 * 4  # 3 target words x 3 source words + EOS
    assert rnn.locator("svg.heatmap text.tgt").all_text_contents() == ["汤姆", "追逐", "杰瑞"]
    assert rnn.locator("svg.heatmap text.src").all_text_contents() == ["Tom", "chase", "Jerry", "</s>"]
    rnn.locator("svg.heatmap text.tgt >> text=杰瑞").hover()
    assert "Jerry" in rnn.locator("svg.heatmap text.src.hl").all_text_contents()
    assert rnn.locator("svg.heatmap text.tgt.active").text_content() == "杰瑞"
    rnn.locator("svg.heatmap text.tgt >> text=汤姆").hover()
    assert rnn.locator("svg.heatmap text.src.hl").all_text_contents() == ["Tom"]
    rnn.locator("svg.heatmap rect.cell[data-row='2'][data-col='2']").hover()  # a value on hover
    assert (
        rnn.locator("svg.heatmap rect.cell[data-row='2'][data-col='2'] title")
        .text_content()
        .startswith("杰瑞 <- Jerry: 0.")
    )
    screenshot(page, "page", tmp_path)


def test_a_fixed_start_steers_the_translation_on_the_page(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#prefix", "杰瑞")
    try:
        translate(page, "Tom chase Jerry")
        rnn = page.locator(RNN)
        assert rnn.locator(".translation").inner_text().startswith("杰瑞")
        assert rnn.locator("svg.heatmap text.tgt").all_text_contents()[0] == "杰瑞"  # its row: where it looked
    finally:
        page.fill("#prefix", "")


def test_every_layer_and_head_of_the_transformer(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    translate(page, "Tom chase Jerry")
    tf = page.locator(TRANSFORMER)
    words = tf.locator("svg.heatmap text.tgt").all_text_contents()
    tf.locator("select.map").select_option("encoder")  # the source attending to itself
    assert tf.locator("svg.heatmap text.tgt").all_text_contents() == ["Tom", "chase", "Jerry", "</s>"]
    assert tf.locator("svg.heatmap text.src").all_text_contents() == ["Tom", "chase", "Jerry", "</s>"]
    assert tf.locator("select.layer option").all_text_contents() == ["layer 1", "layer 2"]
    assert tf.locator("select.head option").all_text_contents() == ["mean of heads", "head 1", "head 2"]
    tf.locator("select.layer").select_option("0")
    fills = {}
    for head in ("0", "1", "mean"):
        tf.locator("select.head").select_option(head)
        fills[head] = [c.get_attribute("fill") for c in tf.locator("svg.heatmap rect.cell").all()]
        assert len(fills[head]) == 4 * 4
    assert fills["0"] != fills["1"]  # two heads, two maps
    tf.locator("select.map").select_option("decoder")  # the output attending to <s> and itself so far
    assert tf.locator("svg.heatmap text.src").all_text_contents() == ["<s>", *words[:-1]]
    upper = tf.locator("svg.heatmap rect.cell[data-row='0'][data-col='1'] title").text_content()
    assert upper.endswith(": 0 (exactly)")  # masked: never the future
    screenshot(page, "layers", tmp_path)
    tf.locator("select.map").select_option("shown")
    assert tf.locator("svg.heatmap text.tgt").all_text_contents() == words


def test_the_training_slider_shows_attention_being_learned(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert page.locator("#training").is_visible()
    info = page.locator("#training-info")
    assert info.text_content().startswith("update 150 · epoch 30 · valid BLEU 100.00")  # the last validation first
    slider = page.locator("#training-step")
    slider.focus()
    page.keyboard.press("Home")  # the keyboard moves it
    assert info.text_content().startswith("update 5 · epoch 1 · valid BLEU ")
    first = page.locator("#training-examples .panel[data-sentence='0'] .translation").inner_text()
    page.keyboard.press("ArrowRight")
    assert info.text_content().startswith("update 10 · epoch 2")
    page.keyboard.press("End")
    assert page.locator("#training-examples .panel").count() == 2
    assert page.locator("#training-examples .panel[data-sentence='0'] .translation").inner_text() == "汤姆 追逐 杰瑞"
    assert first != "汤姆 追逐 杰瑞"  # after 5 updates it had not learned the sentence yet
    assert "alignment accuracy 100.0 %" in info.text_content()
    slider.fill("10")
    assert info.text_content().startswith("update 55")
    screenshot(page, "training", tmp_path)


def test_a_sentence_against_its_gold_alignments(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert page.locator("#gold").is_visible()
    page.select_option("#gold-sentence", "0")
    page.click("#gold-go")
    rnn = page.locator("#gold-results " + RNN)
    rnn.wait_for(timeout=30_000)
    assert rnn.locator(".translation").inner_text() == "汤姆 追逐 杰瑞"
    assert rnn.locator("svg.heatmap rect.gold").count() == 3  # word i to word i
    assert "alignment accuracy 100.0 % (3 gold-aligned words)" in rnn.locator(".accuracy").inner_text()
    cell = rnn.locator("svg.heatmap rect.cell[data-row='1'][data-col='1']")
    cell.hover()  # a gold-outlined cell: its row lights up, its value and "gold link" on hover
    assert rnn.locator("svg.heatmap text.tgt.active").text_content() == "追逐"
    assert cell.locator("title").text_content().endswith("(gold link)")
    assert page.locator("#gold-results " + TRANSFORMER + " svg.heatmap rect.gold").count() == 3
    screenshot(page, "gold", tmp_path)


def test_the_beam_as_a_tree(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    translate(page, "Tom chase Jerry")  # beam 3
    rnn = page.locator(RNN)
    tree = rnn.locator("details.beam")
    assert not rnn.locator("svg.tree").is_visible()
    tree.locator("summary").click()
    assert rnn.locator("svg.tree").is_visible()
    assert rnn.locator("svg.tree g.kept").count() >= 3 and rnn.locator("svg.tree g.finished").count() >= 3
    assert rnn.locator("svg.tree g.pruned").count() >= 1
    best = [t.split(" ")[0] for t in rnn.locator("svg.tree g.kept[data-step='0'] text").all_text_contents()]
    assert "汤姆" in best
    screenshot(page, "beam", tmp_path)


def test_replace_an_output_word_and_read_the_new_translation(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    translate(page, "Tom chase Jerry")
    rnn = page.locator(RNN)
    rnn.locator(".words button >> text=追逐").click()
    choices = rnn.locator(".alts button.alt")
    assert choices.count() == 5
    texts = [c.evaluate("b => b.firstChild.textContent") for c in choices.all()]  # the words, best first
    assert texts[0] == "追逐"  # what the model wrote there was its most probable word
    other = next(i for i, t in enumerate(texts) if t not in ("追逐", "</s>"))
    if "</s>" in texts:  # the end of the sentence is offered, but no prefix can force it
        assert choices.nth(texts.index("</s>")).is_disabled()
    word = texts[other]
    screenshot(page, "whatif", tmp_path)
    choices.nth(other).click()
    page.wait_for_function(
        "w => document.querySelector('.panel[data-model=run] .translation').textContent.startsWith('汤姆 ' + w)",
        arg=word,
        timeout=30_000,
    )
    assert rnn.locator("svg.heatmap text.tgt").all_text_contents()[:2] == ["汤姆", word]


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
