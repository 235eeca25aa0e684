"""`ledger serve` in a real browser (Playwright driving Debian's chromium): every page type on the
bundled examples and on the shared corpus, with its content and links, no console errors (a CSP
violation or a 404 is one), axe-core's accessibility rules, full-page screenshots written to
build/screenshots/ for a person to look at, styles applied, and the optional n/p keys."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import ledger
from tests.conftest import CORPUS
from tests.helpers import DEADLINE
from tests.web_support import CHROMIUM, SCREENSHOTS, Site, corpus_store, examples_store

sync_api = pytest.importorskip("playwright.sync_api")
Axe = pytest.importorskip("axe_playwright_python.sync_playwright").Axe

ARTICLE = "harbour-bridge-closure"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, headless, launched from the system's binary (Playwright downloads none here)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no chromium at {CHROMIUM} (.ci/run installs Debian's chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


class Visit:
    """One page loaded in a fresh browser tab, with what its console reported."""

    def __init__(self, browser: Any, url: str, *, width: int = 1280, dark: bool = False) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme="dark" if dark else "light")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("dialog", lambda dialog: self.errors.append(f"dialog: {dialog.message}"))
        self.page.set_default_timeout(DEADLINE * 1000)
        self.response = self.page.goto(url, wait_until="load")

    def check(self, shot: str) -> None:
        """No console errors, no accessibility violations; a full-page screenshot as `shot`.png."""
        assert self.response is not None and self.response.status == 200
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"), full_page=True)
        results = Axe().run(self.page)
        assert results.violations_count == 0, results.generate_report()
        assert self.errors == [], self.errors

    def internal_links(self) -> set[str]:
        """The viewer's own links on the page (not those inside the article's text)."""
        hrefs = self.page.eval_on_selector_all("a[href]", "links => links.filter(a => !a.closest('.body')).map(a => a.href)")
        origin = "/".join(self.page.url.split("/", 3)[:3])
        return {href.split("#")[0] for href in hrefs if href.startswith(origin + "/")}

    def close(self) -> None:
        self.context.close()


def visit_all(browser: Any, site: Site, pages: list[tuple[str, str, list[str]]], prefix: str, link_sample: int | None = None) -> None:
    """Visit each (screenshot name, path, texts shown) page; check it, and that its links answer."""
    checked: set[str] = set()
    for name, path, shows in pages:
        visit = Visit(browser, site.url + path)
        try:
            body = visit.page.inner_text("main")
            for text in shows:
                assert text in body, f"{path}: {text!r}"
            visit.check(f"{prefix}-{name}")
            links = sorted(visit.internal_links() - checked)[:link_sample]
            for link in links:
                assert httpx.get(link, timeout=DEADLINE).status_code == 200, f"{path} links to {link}"
            checked.update(links)
        finally:
            visit.close()


@pytest.fixture(scope="module")
def examples_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with examples_store(tmp_path_factory.mktemp("web") / "store") as led, Site(led) as served:
        yield served


EXAMPLE_PAGES = [
    ("articles", "/", ["Harbour bridge to reopen on Friday after cable repairs", "3 articles"]),
    ("feed", "/feed", ["reopening date", "Tom Berg"]),
    ("article", f"/a/{ARTICLE}", ["This is the latest version, v3", "UPDATE (6:40 P.M.):"]),
    ("article-old", f"/a/{ARTICLE}/v/1", ["This is an old version, v1 of 3", "Older version"]),
    ("article-as-of", f"/a/{ARTICLE}?at=2024-03-05T12:00Z", ["v2 of 3"]),
    ("article-source", f"/a/{ARTICLE}/v/3?view=source", ["Categories: transport, local news, weather"]),
    ("article-markdown", "/a/night-market-returns", ["Quay Street"]),
    ("history", f"/a/{ARTICLE}/history", ["Ana Ruiz", "third cable; ferry update", "Compare selected versions"]),
    ("diff-inline", f"/a/{ARTICLE}/diff/1..3", ["Title changed from", "Update block added"]),
    ("diff-side", f"/a/{ARTICLE}/diff/1..3?view=side", ["Title changed from"]),
    ("categories", "/categories", ["local news"]),
    ("category", "/c/local%20news", ["Membership over time"]),
    ("blame", f"/a/{ARTICLE}/blame", ["Who wrote what", "Versions in this text, newest first", "reopening date"]),
    ("blame-old", f"/a/{ARTICLE}/v/2/blame", ["An old version, v2 of 3"]),
    ("search", "/search?q=ferry", ["Where “ferry” stood", "still there"]),
    ("search-form", "/search", ["Search the history"]),
]


@pytest.mark.slow
def test_every_page_type_on_the_examples(browser: Any, examples_site: Site) -> None:
    visit_all(browser, examples_site, EXAMPLE_PAGES, "examples")


@pytest.mark.slow
def test_a_phone_and_dark_mode_are_styled_and_accessible(browser: Any, examples_site: Site) -> None:
    for name, path, options in (
        ("history-phone", f"/a/{ARTICLE}/history", {"width": 390}),
        ("diff-side-phone", f"/a/{ARTICLE}/diff/1..3?view=side", {"width": 390}),
        ("diff-inline-dark", f"/a/{ARTICLE}/diff/1..3", {"dark": True}),
        ("article-dark", f"/a/{ARTICLE}", {"dark": True}),
    ):
        visit = Visit(browser, examples_site.url + path, **options)
        try:
            visit.check(f"examples-{name}")
            width = visit.page.evaluate("document.documentElement.scrollWidth")
            assert width <= visit.page.viewport_size["width"], f"{path}: the page scrolls sideways ({width} px)"
        finally:
            visit.close()


def test_the_blame_and_search_pages_in_the_browser(browser: Any, examples_site: Site) -> None:
    # Also in the slow full visits above; here on their own so that every run checks them.
    for name, path, shows, options in (
        ("blame", f"/a/{ARTICLE}/blame", ["Who wrote what", "Tom Berg"], {}),
        ("blame-dark", f"/a/{ARTICLE}/v/2/blame", ["An old version, v2 of 3"], {"dark": True}),
        ("blame-phone", f"/a/{ARTICLE}/blame", ["reopening date"], {"width": 390}),
        ("search", "/search?q=two+of+its", ["Went out", "gone"], {}),
        ("search-phone", "/search?q=ferry", ["still there"], {"width": 390}),
        ("search-form", "/search", ["Search the history"], {}),
    ):
        visit = Visit(browser, examples_site.url + path, **options)
        try:
            body = visit.page.inner_text("main")
            for text in shows:
                assert text in body, f"{path}: {text!r}"
            visit.check(f"examples-{name}")
            width = visit.page.evaluate("document.documentElement.scrollWidth")
            assert width <= visit.page.viewport_size["width"], f"{path}: the page scrolls sideways ({width} px)"
            for link in sorted(visit.internal_links()):
                assert httpx.get(link, timeout=DEADLINE).status_code == 200, f"{path} links to {link}"
        finally:
            visit.close()


def test_blame_is_shaded_by_age_and_names_versions_in_words(browser: Any, examples_site: Site) -> None:
    visit = Visit(browser, examples_site.url + f"/a/{ARTICLE}/blame")
    try:
        shades = visit.page.evaluate("""() => ['a0', 'a2', 'a4'].map(c => getComputedStyle(document.querySelector('td.text .' + c)).backgroundColor)""")
        assert shades == ["rgb(255, 198, 128)", "rgb(255, 228, 194)", "rgb(248, 243, 234)"]
        # The first line holds words of v1 and v3: a screen reader hears which is which.
        first = visit.page.text_content("table.blame tbody tr:first-child td.text")
        assert first == "(v1) Harbour bridge to (v3) reopen on Friday (v1) after (v3) cable repairs"
        assert visit.page.inner_text("table.blame tbody tr:first-child td.margin").split() == ["v1", "v3"]
        title = visit.page.get_attribute("td.text .a0", "title")
        assert title == "v3, 2024-03-05 18:40 UTC, Tom Berg: reopening date"
    finally:
        visit.close()


def test_the_stylesheet_is_applied(browser: Any, examples_site: Site) -> None:
    # A blocked or missing stylesheet passes every DOM check; computed styles show it.
    visit = Visit(browser, examples_site.url + f"/a/{ARTICLE}/diff/1..2")
    try:
        style = visit.page.evaluate("""() => {
            const ins = getComputedStyle(document.querySelector('ins'));
            const hidden = document.querySelector('ins .vh').getBoundingClientRect();
            return {ins: ins.backgroundColor, del: getComputedStyle(document.querySelector('del')).backgroundColor,
                    header: getComputedStyle(document.querySelector('header.site')).borderBottomStyle, hidden: hidden.width}
        }""")
        assert style == {"ins": "rgb(215, 245, 221)", "del": "rgb(251, 221, 224)", "header": "solid", "hidden": 1}
        assert visit.errors == []
    finally:
        visit.close()


def test_the_print_stylesheet_drops_navigation(browser: Any, examples_site: Site) -> None:
    visit = Visit(browser, examples_site.url + f"/a/{ARTICLE}/diff/1..3")
    try:
        visit.page.emulate_media(media="print")
        visit.page.screenshot(path=str(SCREENSHOTS / "examples-diff-inline-print.png"), full_page=True)
        shown = visit.page.evaluate("[...document.querySelectorAll('header.site nav, footer.site')].map(e => getComputedStyle(e).display)")
        assert shown == ["none", "none"]
        assert visit.page.evaluate("getComputedStyle(document.querySelector('del')).textDecorationLine") == "line-through"
    finally:
        visit.close()


def test_keys_n_and_p_move_between_changes(browser: Any, examples_site: Site) -> None:
    visit = Visit(browser, examples_site.url + f"/a/{ARTICLE}/diff/1..3")
    try:
        focused = []
        for key in ("n", "n", "p"):
            visit.page.keyboard.press(key)
            focused.append(visit.page.evaluate("document.activeElement.id"))
        assert focused == ["c1", "c2", "c1"]
    finally:
        visit.close()


def test_pages_work_as_plain_links_and_forms_without_script(browser: Any, examples_site: Site) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_default_timeout(DEADLINE * 1000 / 4)
        page.goto(examples_site.url + "/")
        page.fill("#q", "bridge")
        page.click("text=Show")
        assert page.url.endswith("/?q=bridge&category=") and page.locator("table.list tbody tr").count() == 1
        page.click("text=Harbour bridge to reopen on Friday after cable repairs")
        page.click("text=History")
        page.check("input[name=from][value='1']")
        page.check("input[name=view]")
        page.click("text=Compare selected versions")
        assert page.url == examples_site.url + f"/a/{ARTICLE}/diff/1..3?view=side"
        page.click("text=Inline")
        assert page.url == examples_site.url + f"/a/{ARTICLE}/diff/1..3"
        page.click("text=← Older change")
        assert page.url == examples_site.url + f"/a/{ARTICLE}/diff/prev..1"
        page.fill("#site-q", "two of its")
        page.click("header.site button")
        assert page.url == examples_site.url + "/search?q=two+of+its"
        page.fill("#article", ARTICLE)
        page.check("input[name=exact]")
        page.click("form.filters button")
        assert page.url == examples_site.url + f"/search?q=two+of+its&article={ARTICLE}&since=&exact=1"
        page.click("text=blame")
        assert page.url == examples_site.url + f"/a/{ARTICLE}/v/1/blame"
        page.fill("#at", "2024-03-05T12:00Z")
        page.click("form.asof button")
        assert "An old version, v2 of 3" in page.inner_text("nav.banner")
        page.goto(examples_site.url + f"/a/{ARTICLE}")
        page.fill("#at", "2024-03-05T12:00Z")
        page.click("form.asof button")
        assert page.url == examples_site.url + f"/a/{ARTICLE}?at=2024-03-05T12%3A00Z", page.url
        assert "v2 of 3" in page.inner_text("nav.banner")
    finally:
        context.close()


def test_hostile_drafts_run_nothing_in_the_browser(browser: Any, tmp_path: Path) -> None:
    draft = tmp_path / "hostile.md"
    draft.write_text(
        "---\ntitle: Hostile <script>window.pwned = 'title'</script>\n---\n"
        "Body <script>window.pwned = 1</script> <img src=x onerror=\"window.pwned = 2\">\n\n"
        "[click me](javascript:window.pwned=3) <a href=\"javascript:window.pwned=4\">raw</a>\n",
        encoding="utf-8",
    )
    with ledger.open(tmp_path / "store", create=True) as led:
        ledger.ingest(led, [draft], at="2024-01-01T00:00Z")
        draft.write_text(draft.read_text(encoding="utf-8").replace("Body", "Body <svg onload=\"window.pwned=5\"></svg>"), encoding="utf-8")
        ledger.ingest(led, [draft], at="2024-01-02T00:00Z")
        with Site(led) as served:
            for path in ("/a/hostile", "/a/hostile/diff/1..2", "/a/hostile/diff/1..2?view=side", "/a/hostile/history", "/a/hostile/blame", "/search?q=pwned"):
                visit = Visit(browser, served.url + path)
                try:
                    for link in visit.page.query_selector_all("main a"):
                        assert not (link.get_attribute("href") or "").startswith("javascript"), path
                    assert visit.page.evaluate("window.pwned === undefined"), path
                    assert visit.page.query_selector("main img, main script, main svg") is None, path
                    assert visit.errors == [], visit.errors
                finally:
                    visit.close()


@pytest.fixture(scope="module")
def corpus_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, ledger.Ledger]]:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (CI has ../shared beside the project)")
    with corpus_store(tmp_path_factory.mktemp("web-corpus") / "store", CORPUS) as led, Site(led) as served:
        yield served, led


@pytest.mark.slow
def test_every_page_type_on_the_corpus(browser: Any, corpus_site: tuple[Site, ledger.Ledger]) -> None:
    site, led = corpus_site
    rows = led.articles()
    longest = max(rows, key=lambda row: row.version)
    category = max(led.categories(), key=lambda c: c.count).name
    last = longest.version
    pages = [
        ("articles", "/", [f"{len(rows)} articles"]),
        ("feed", "/feed?since=2019-01-01", ["newest first"]),
        ("article", f"/a/{longest.article}", [f"This is the latest version, v{last}"]),
        ("article-old", f"/a/{longest.article}/v/1", [f"v1 of {last}"]),
        ("article-source", f"/a/{longest.article}?view=source", []),
        ("history", f"/a/{longest.article}/history", [f"{last} versions"]),
        ("diff-inline", f"/a/{longest.article}/diff/1..cur", ["Summary"]),
        ("diff-side", f"/a/{longest.article}/diff/1..cur?view=side", ["Summary"]),
        ("diff-metadata", f"/a/{longest.article}/diff/prev..{last}", ["Summary"]),
        ("categories", "/categories", [category]),
        ("category", f"/c/{category}", ["Membership over time"]),
        ("blame", f"/a/{longest.article}/blame", ["Versions in this text, newest first"]),
        ("search", "/search?q=node", ["stretches of versions"]),
    ]
    visit_all(browser, site, pages, "corpus", link_sample=40)


@pytest.mark.slow
def test_every_article_and_diff_of_the_corpus_answers(corpus_site: tuple[Site, ledger.Ledger]) -> None:
    # Not in the browser (2,000 versions): every article page and every consecutive diff answers.
    site, led = corpus_site
    with httpx.Client(base_url=site.url, timeout=DEADLINE) as client:
        for row in led.articles():
            assert client.get(f"/a/{row.article}").status_code == 200, row.article
            for version in range(1, row.version + 1):
                assert client.get(f"/a/{row.article}/diff/prev..{version}").status_code == 200, (row.article, version)
