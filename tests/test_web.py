"""`ledger serve` over HTTP, through uvicorn and a real client: every page and its JSON, the
permanent addresses and their aliases, the security rules, and a page that follows the log."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import ledger
from ledger.web import allowed_hosts
from ledger.web.app import CSP
from tests.helpers import DEADLINE
from tests.web_support import Site, examples_store

ARTICLE = "harbour-bridge-closure"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The viewer over the bundled examples."""
    with examples_store(tmp_path_factory.mktemp("web") / "store") as led, Site(led) as served:
        yield served


def get(site: Site, path: str, **options: object) -> httpx.Response:
    return httpx.get(site.url + path, timeout=DEADLINE, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("path", "shows"), [
    ("/", ["Harbour bridge to reopen on Friday", "The night market returns", "local news"]),
    ("/?q=harbour", ["Harbour bridge to reopen"]),
    ("/?category=weather", ["Harbour bridge to reopen"]),
    ("/feed", ["Tom Berg", "reopening date", "block added"]),
    ("/feed?kind=categories+changed&since=2024-03-05T12:00Z", ["categories +weather"]),
    (f"/a/{ARTICLE}", ["This is the latest version, v3", "UPDATE (6:40 P.M.):", "Update from the Port Authority:"]),
    (f"/a/{ARTICLE}/v/1", ["This is an old version, v1 of 3", "Harbour bridge closed to traffic after storm damage"]),
    (f"/a/{ARTICLE}?at=2024-03-05T12:00Z", ["v2 of 3", "as of 2024-03-05T12:00Z"]),
    (f"/a/{ARTICLE}/v/2?view=source", ["Categories: transport, local news"]),
    (f"/a/{ARTICLE}/history", ["reopening date", "third cable; ferry update", "Compare selected versions"]),
    (f"/a/{ARTICLE}/diff/1..2", ["Update block added: “Update from the Port Authority:” (v2).", "<del><span class=\"vh\">removed: </span>two</del>"]),
    (f"/a/{ARTICLE}/diff/2..3?view=side", ["Title changed from", "Categories +weather.", "<table class=\"diff side\""]),
    (f"/a/{ARTICLE}/diff/3..1", ["Update block removed: “Update from the Port Authority:” (v2).", "Update block removed: “UPDATE (6:40 P.M.):” (v3)."]),
    ("/categories", ["local news", "weather"]),
    ("/categories?at=2024-03-05T12:00Z", ["transport"]),
    ("/c/local%20news", ["Membership over time", "Harbour bridge"]),
    (f"/a/{ARTICLE}/blame", ["The latest version, v3", "Tom Berg", "reopening date", "first report", '<span class="vh">(v3) </span>reopen on Friday</span>']),
    (f"/a/{ARTICLE}/v/1/blame", ["An old version, v1 of 3", "Harbour bridge closed to traffic after storm damage"]),
    (f"/a/{ARTICLE}/v/2/blame", ['<span class="vh">(v2) </span>three</span>', "third cable; ferry update", "shade 1 of 6"]),
    (f"/a/{ARTICLE}/blame?at=2024-03-05T12:00Z", ["An old version, v2 of 3", "as of 2024-03-05T12:00Z"]),
    ("/search?q=ferry", ["Where “ferry” stood", "2 stretches of versions in 1 article", "update blocks", "still there", "third cable; ferry update"]),
    ("/search?q=two+of+its", ["Went out", f'href="/a/{ARTICLE}/v/2">v2</a>', "gone"]),
    ("/search?q=ferry&article=harbour-bridge-closure", ["2 stretches of versions in 1 article"]),
    ("/search?q=ferry&article=night-market-returns", ["0 stretches of versions."]),
    ("/search?q=two+of+its&since=2024-03-05T11:00Z", ["1 stretch of versions in 1 article"]),
    ("/search?q=two+of+its&since=2024-03-05T12:00Z", ["0 stretches of versions."]),
    ("/search", ["Search the history", "Finds every stretch of versions"]),
    ("/search?q=++", ["Search the history"]),
])
def test_every_page_answers_with_what_it_shows(site: Site, path: str, shows: list[str]) -> None:
    response = get(site, path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    for text in shows:
        assert text in response.text, f"{path}: {text!r}"


def test_lists_drop_what_filters_exclude(site: Site) -> None:
    assert "night market" not in get(site, "/?q=harbour").text
    assert "Library" not in get(site, "/?category=weather").text
    assert "night market" not in get(site, "/feed?until=2024-03-06").text
    assert "not one of" in get(site, "/feed?kind=nonsense").text
    # A category no article was ever in is a typo: a 404 naming close ones, not an empty list.
    for path in ("/?category=wether", "/feed?category=wether", "/?q=bridge&category=wether", "/c/wether"):
        page = get(site, path)
        assert page.status_code == 404 and "no article was ever in category &#39;wether&#39; (did you mean &#39;weather&#39;?)" in page.text, path


def test_every_page_is_json_too(site: Site) -> None:
    for path in ("/", "/feed", f"/a/{ARTICLE}", f"/a/{ARTICLE}/history", f"/a/{ARTICLE}/diff/1..3", "/categories", "/c/weather", f"/a/{ARTICLE}/blame", f"/a/{ARTICLE}/v/1/blame", "/search"):
        by_suffix = get(site, path + ".json")
        by_header = get(site, path, headers={"Accept": "application/json"})
        assert by_suffix.headers["content-type"] == "application/json", path
        assert by_suffix.json() == by_header.json(), path
    article = get(site, f"/a/{ARTICLE}/v/2.json").json()
    assert (article["version"], article["latest_version"]) == (2, 3)
    history = get(site, f"/a/{ARTICLE}/history.json").json()
    assert [v["version"] for v in history["versions"]] == [3, 2, 1]
    assert history["versions"][-1]["words_added"] > 50 and history["versions"][-1]["words_removed"] == 0
    diff = get(site, f"/a/{ARTICLE}/diff/1..2.json").json()
    changed = [b for b in diff["blocks"] if b["kind"] == "changed"]
    assert [(r["op"], r["text"]) for r in changed[0]["runs"] if r["op"] != "equal"] == [("delete", "two"), ("insert", "three")]
    assert get(site, "/nope.json").json()["status"] == 404


def test_blame_and_search_as_json(site: Site) -> None:
    blame = get(site, f"/a/{ARTICLE}/v/2/blame.json").json()
    assert (blame["version"], blame["latest_version"]) == (2, 3)
    assert "".join(span["text"] for span in blame["spans"]) == blame["text"]
    assert {(span["version"], span["actor"]) for span in blame["spans"]} == {(1, "Ana Ruiz"), (2, "Ana Ruiz")}
    assert next(span["text"] for span in blame["spans"] if span["version"] == 2) == "three"
    assert get(site, f"/a/{ARTICLE}/blame.json?at=2024-03-05T12:00Z").json()["version"] == 2
    found = get(site, "/search.json?q=two+of+its").json()
    assert found["total"] == 1 and found["pages"] == 1 and (found["article"], found["since"]) == (None, None)
    (hit,) = found["hits"]
    assert (hit["appeared_version"], hit["vanished_version"], hit["current"], hit["vanished_reason"]) == (1, 2, False, "third cable; ferry update")
    assert len(get(site, "/search.json?q=FERRY").json()["hits"]) == 2
    assert get(site, "/search.json?q=FERRY&exact=1").json()["hits"] == []
    assert get(site, "/search.json").json() == {"phrase": "", "article": None, "since": None, "exact": False, "hits": []}


def _links(html: str) -> set[str]:
    return set(re.findall(r'href="(/[^"#]*)"', html))


def test_blame_and_search_are_linked_and_link_to_what_they_name(site: Site) -> None:
    article = get(site, f"/a/{ARTICLE}/v/2").text
    assert f'href="/a/{ARTICLE}/v/2/blame"' in article
    history = get(site, f"/a/{ARTICLE}/history").text
    assert all(f'href="/a/{ARTICLE}/v/{n}/blame"' in history for n in (1, 2, 3)) and f'href="/a/{ARTICLE}/blame"' in history
    assert 'action="/search"' in get(site, "/").text and 'action="/search"' in get(site, "/nope").text
    blame = get(site, f"/a/{ARTICLE}/blame").text
    links = _links(blame)
    assert {f"/a/{ARTICLE}/v/{n}" for n in (1, 2, 3)} <= links
    assert {f"/a/{ARTICLE}/diff/0..1", f"/a/{ARTICLE}/diff/prev..2", f"/a/{ARTICLE}/diff/prev..3", f"/a/{ARTICLE}/v/2/blame"} <= links
    search = get(site, "/search?q=two+of+its").text
    assert {f"/a/{ARTICLE}/v/1", f"/a/{ARTICLE}/v/2", f"/a/{ARTICLE}/diff/0..1", f"/a/{ARTICLE}/diff/prev..2", f"/a/{ARTICLE}/v/1/blame"} <= _links(search)
    for link in sorted(links | _links(search)):
        assert get(site, link.replace("&amp;", "&")).status_code == 200, link


@pytest.mark.parametrize(("path", "status", "says"), [
    ("/a/nope/blame", 404, "not in the log"),
    (f"/a/{ARTICLE}/v/4/blame", 404, "versions 1 to 3"),
    (f"/a/{ARTICLE}/v/0/blame", 404, "versions 1 to 3"),
    (f"/a/{ARTICLE}/blame?at=2020-01-01", 404, "did not exist yet"),
    (f"/a/{ARTICLE}/blame?at=soon", 400, "soon"),
    ("/search?q=ferry&article=nope", 404, "not in the log"),
    ("/search?q=%21%21%21", 400, "letter or digit"),
    ("/search?q=ferry&since=whenever", 400, "whenever"),
    ("/search?q=ferry&page=2", 404, "page 2"),
    ("/search?q=ferry&page=0", 400, "page"),
])
def test_blame_and_search_refuse_what_is_not_there(site: Site, path: str, status: int, says: str) -> None:
    response = get(site, path)
    assert response.status_code == status, (path, response.text[-300:])
    assert says in response.text, path
    if path.startswith("/search") and "page" not in path:
        # The form comes back with what was wrong, filled in as it was sent.
        assert 'id="q"' in response.text and "Search options" in response.text


def test_long_lists_are_paged(tmp_path: Path) -> None:
    with ledger.open(tmp_path / "store", create=True) as led:
        led.append([
            {"type": "ArticleCreated", "article": f"story-{n:03d}", "data": {"title": f"Story {n}", "body": f"The harbour bridge, part {n}.", "categories": ["odd" if n % 2 else "even"]}, "occurred_at": f"2024-01-01T{n // 60:02d}:{n % 60:02d}:00Z"}
            for n in range(205)
        ])
        with Site(led) as served:
            pages = [httpx.get(served.url + f"/.json?page={n}", timeout=DEADLINE).json() for n in (1, 2, 3)]
            assert [len(p["articles"]) for p in pages] == [100, 100, 5] and {(p["pages"], p["total"]) for p in pages} == {(3, 205)}
            assert pages[0]["articles"][0]["article"] == "story-204" and pages[2]["articles"][-1]["article"] == "story-000"
            first = httpx.get(served.url + "/?category=odd", timeout=DEADLINE).text
            assert "102 articles, most recently changed first; page 1 of 2." in first and 'href="/?page=2&amp;category=odd"' in first
            second = httpx.get(served.url + "/?page=2&category=odd", timeout=DEADLINE).text
            assert 'href="/?page=1&amp;category=odd"' in second and "Story 1<" in second and "Story 2<" not in second
            assert httpx.get(served.url + "/?page=4", timeout=DEADLINE).status_code == 404
            hits = [httpx.get(served.url + f"/search.json?q=harbour+bridge&page={n}", timeout=DEADLINE).json() for n in (1, 2, 3)]
            assert [len(h["hits"]) for h in hits] == [100, 100, 5] and hits[0]["total"] == 205
            page = httpx.get(served.url + "/search?q=harbour+bridge&page=2", timeout=DEADLINE).text
            assert "page 2 of 3" in page and 'href="/search?q=harbour%20bridge&amp;page=3"' in page and 'href="/search?q=harbour%20bridge&amp;page=1"' in page


def test_diff_aliases_name_the_same_versions(site: Site) -> None:
    def versions(spec: str) -> tuple[int, int]:
        data = get(site, f"/a/{ARTICLE}/diff/{spec}.json").json()
        return data["from_version"], data["to_version"]

    assert versions("prev..3") == versions("2..3") == versions("2..next") == versions("2..cur") == versions("3") == (2, 3)
    assert versions("0..1") == versions("prev..1") == (0, 1)
    assert versions("1..cur") == (1, 3)
    compared = get(site, f"/a/{ARTICLE}/diff?from=3&to=1&view=side", follow_redirects=False)
    assert compared.status_code == 303 and compared.headers["location"] == f"/a/{ARTICLE}/diff/1..3?view=side"
    assert get(site, f"/a/{ARTICLE}/diff/prev..prev").status_code == 400
    assert get(site, f"/a/{ARTICLE}/diff/1..9").status_code == 404


@pytest.mark.parametrize("path", [
    "/a/..%2F..%2Fetc%2Fpasswd", "/a/%2e%2e", "/a/%2e%2e/history", "/a/..%2Fevents.jsonl", "/a/HARBOUR-BRIDGE-CLOSURE", "/a/a%00b",
    "/a/" + "x" * 300, f"/a/{ARTICLE}/v/0", f"/a/{ARTICLE}/v/4", f"/a/{ARTICLE}/v/-1", "/static/..%2F__init__.py", "/static/../app.py",
    "/c/no%20such%20category", "/events.jsonl", "/a/", "/a/%2e%2e/blame", "/a/..%2Fevents.jsonl/blame", f"/a/{ARTICLE}/v/-1/blame", f"/a/{ARTICLE}/blame/x",
])
def test_odd_addresses_are_not_found(site: Site, path: str) -> None:
    response = get(site, path)
    assert response.status_code == 404, path
    assert "root:" not in response.text and "import" not in response.text


def test_bad_input_is_a_clear_400(site: Site) -> None:
    response = get(site, f"/a/{ARTICLE}?at=yesterday-ish")
    assert response.status_code == 400 and "yesterday-ish" in response.text
    assert get(site, f"/a/{ARTICLE}/history?page=0").status_code == 400
    assert get(site, f"/a/{ARTICLE}/history?page=2").status_code == 404


def test_only_its_own_host_name_and_only_reading(site: Site) -> None:
    for host in ("evil.example", "127.0.0.1.nip.io", "localhost.evil.example:80"):
        assert get(site, "/", headers={"Host": host}).status_code == 400, host
    assert get(site, "/", headers={"Host": "localhost"}).status_code == 200
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        response = httpx.request(method, site.url + f"/a/{ARTICLE}", timeout=DEADLINE)
        assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD", method
    head = httpx.head(site.url + f"/a/{ARTICLE}", timeout=DEADLINE)
    assert head.status_code == 200 and head.content == b""
    assert allowed_hosts("127.0.0.1") == frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
    assert "0.0.0.0" in allowed_hosts("0.0.0.0")


def test_every_response_carries_the_security_headers(site: Site) -> None:
    for path in ("/", f"/a/{ARTICLE}/diff/1..3", "/static/ledger.css", "/favicon.ico", "/nope", "/a/x.json"):
        response = get(site, path)
        assert response.headers["content-security-policy"] == CSP, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in CSP and "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert get(site, "/favicon.ico").headers["content-type"] == "image/svg+xml"


def test_hostile_drafts_render_inert(tmp_path: Path) -> None:
    # Every page that shows draft text or what a reader typed: it is escaped, never markup.
    draft = tmp_path / "hostile.md"
    draft.write_text(
        "---\ntitle: <script>alert('title')</script>\ncategories: [\"<b>bold</b>\"]\n---\n"
        "Body <script>alert(1)</script> and <img src=x onerror=alert(2)>.\n\n"
        "[click me](javascript:alert(3)) and <a href=\"javascript:alert(4)\">raw</a>\n",
        encoding="utf-8",
    )
    plain = tmp_path / "plain.txt"
    plain.write_text("<script>alert(5)</script> title\n\nBody <img src=x onerror=alert(6)>\n", encoding="utf-8")
    with ledger.open(tmp_path / "store", create=True) as led:
        ledger.ingest(led, [draft, plain], at="2024-01-01T00:00Z")
        draft.write_text(draft.read_text(encoding="utf-8").replace("Body", "Body <iframe src=javascript:alert(7)>"), encoding="utf-8")
        ledger.ingest(led, [draft], at="2024-01-02T00:00Z")
        with Site(led) as served:
            for path in (
                "/", "/feed", "/a/hostile", "/a/hostile/v/1", "/a/hostile/history", "/a/hostile/diff/1..2", "/a/hostile/diff/1..2?view=side", "/a/plain",
                "/c/%3Cb%3Ebold%3C%2Fb%3E", "/a/hostile/blame", "/a/hostile/v/1/blame", "/a/plain/blame", "/search?q=alert",
                "/search?q=%3Cscript%3Ealert%281%29%3C%2Fscript%3E", "/search?q=x&article=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            ):
                text = httpx.get(served.url + path, timeout=DEADLINE).text
                assert "<script>alert" not in text and "<iframe" not in text and "<img" not in text, path
                assert '<a href="javascript' not in text and "<b>bold" not in text and "onerror=alert" not in text.replace("&lt;img src=x onerror=alert", ""), path


def test_links_into_the_articles_own_site_are_named_not_followed_to_a_404() -> None:
    from ledger.web.present import render_text

    html = render_text("[v8](/blog/release/v8.3.0), [page](notes.html), [site](https://nodejs.org/x) and [here](#top)", markdown=True)
    assert 'href="/blog' not in html and 'href="notes' not in html
    assert "<a title=\"/blog/release/v8.3.0 (on the article's own site)\"" in html
    assert 'href="https://nodejs.org/x"' in html and 'href="#top"' in html


def test_markdown_headings_can_be_linked_to_and_ids_stay_unique(tmp_path: Path) -> None:
    # Headings had no ids, so a draft's own `[see below](#background)` went nowhere.
    (tmp_path / "story.md").write_text(
        "---\ntitle: Story\n---\n\nSee [the background](#background).\n\n### Background\n\nOld.\n\n### At\n\nx\n\n"
        "## Update 4-May: more\n\n### Background\n\nNew.\n",
        encoding="utf-8",
    )
    with ledger.open(tmp_path / "store", create=True) as led:
        ledger.ingest(led, [tmp_path / "story.md"])
        with Site(led) as served:
            page = httpx.get(served.url + "/a/story", timeout=DEADLINE).text
    ids = re.findall(r'\bid="([^"]*)"', page)
    assert len(ids) == len(set(ids)), ids
    assert 'href="#background"' in page and '<h2 id="background">Background</h2>' in page
    assert '<h3 id="background-1">Background</h3>' in page
    # A heading named like one of the page's own ids (the "As of" field) gets another.
    assert '<h2 id="at-1">At</h2>' in page


def test_images_are_links_that_say_so_not_broken_pictures() -> None:
    # The page loads nothing from other sites: a draft's remote image showed as a broken one.
    from ledger.web.present import render_text

    html = str(render_text("![a cat](https://example.org/cat.png), ![](/img/map.png) and ![data](data:image/png;base64,iVBORw0KGgo=)", markdown=True))
    assert "<img" not in html
    assert '<a href="https://example.org/cat.png" rel="noopener noreferrer">image: a cat</a>' in html
    assert "<a title=\"/img/map.png (on the article's own site)\" rel=\"noopener noreferrer\">image: /img/map.png</a>" in html
    assert ">image: data</a>" in html and "data:image" not in html
    # A badge: the image inside a link is its words, and the link stays the author's.
    badge = str(render_text("[![build](https://ci.example/badge.svg)](https://ci.example/job)", markdown=True))
    assert badge == '<p><a href="https://ci.example/job" rel="noopener noreferrer">image: build</a></p>\n', badge


def test_a_heading_id_is_made_of_the_words_read_not_the_markdown() -> None:
    from ledger.web.present import render_text

    html = str(render_text("# The [background](http://x) story\n\n## _Why_ it `x.y`\n", markdown=True))
    assert '<h2 id="the-background-story">' in html and '<h3 id="why-it-xy">' in html


def test_no_heading_takes_an_id_of_the_pages_own() -> None:
    from ledger.web.present import heading_id

    templates = Path(ledger.__file__).parent / "web" / "templates"
    own = {m for f in templates.glob("*.html") for m in re.findall(r'\bid="([^"{]*)(?:\{\{[^"]*)?"', f.read_text(encoding="utf-8"))}
    assert {"at", "main", "update-", "hit-"} <= own, own
    for name in own:
        # A templated id (`update-{{ n }}`) is tried with a number in place of its template.
        taken = name + "7" if name.endswith("-") or name in ("b", "c") else name
        assert heading_id(taken, set()) != taken, name


def test_a_filtered_feed_finds_its_versions_past_the_newest_hundreds(tmp_path: Path) -> None:
    # The filtered feed is read in growing windows of the timeline: what it shows must be what
    # filtering the whole timeline shows, when matches are sparse and when they fill the page.
    with ledger.open(tmp_path / "store", create=True) as led:
        led.append([{"type": "ArticleCreated", "article": "old", "data": {"title": "Old", "body": "x", "categories": ["rare"]}}])
        led.append([{"type": "ArticleCreated", "article": "busy", "data": {"title": "Busy", "body": "0", "categories": ["often"]}}])
        led.append([{"type": "ArticleCreated", "article": "other", "data": {"title": "Other", "body": "0"}}])
        for n in range(1, 451):
            led.append([{"type": "ArticleEdited", "article": "busy" if n % 3 else "other", "data": {"body": str(n)}}])
        whole = led.timeline()
        with Site(led) as served:
            for category, article in (("rare", "old"), ("often", "busy")):
                got = httpx.get(served.url + f"/feed.json?category={category}", timeout=DEADLINE).json()["entries"]
                want = [e.model_dump(mode="json") for e in whole if e.article == article][:200]
                assert got == want and len(got) == (1 if article == "old" else 200), (category, len(got))


def test_the_page_follows_the_log(tmp_path: Path) -> None:
    # Another process appends a version; the running server shows it on the next request.
    draft = tmp_path / "live.txt"
    draft.write_text("Live story\n\nFirst words.\n", encoding="utf-8")
    store = tmp_path / "store"
    with ledger.open(store, create=True) as led:
        ledger.ingest(led, [draft])
        with Site(led) as served:
            assert "v1" in httpx.get(served.url + "/a/live/history", timeout=DEADLINE).text
            draft.write_text("Live story, updated\n\nFirst words, and more.\n", encoding="utf-8")
            cli = Path(sys.executable).with_name("ledger")
            subprocess.run([str(cli), "--store", str(store), "ingest", str(draft)], check=True, capture_output=True, timeout=DEADLINE)
            page = httpx.get(served.url + "/a/live", timeout=DEADLINE).text
            assert "Live story, updated" in page and "latest version, v2" in page
            assert "Live story, updated" in httpx.get(served.url + "/", timeout=DEADLINE).text


def test_moves_rewrites_metadata_and_long_histories(tmp_path: Path) -> None:
    kept = "The council met on Monday evening to discuss the harbour budget for the coming year."
    moving = "Engineers found cracks in two of the supporting cables during the morning inspection."
    rewritten = "The mayor said the bridge would stay closed for a long while yet, perhaps weeks."
    body = f"{kept}\n\n{moving}\n\n{rewritten}\n\nA closing line that stays the same in every version."
    events: list[dict[str, object]] = [{"type": "ArticleCreated", "article": "story", "data": {"title": "Story", "body": body, "metadata": {"byline": "A"}}}]
    new_body = f"{kept}\n\nFerries run hourly, officials announced in a short statement tonight.\n\nA closing line that stays the same in every version.\n\n{moving.replace('two', 'three')}"
    events.append({"type": "ArticleEdited", "article": "story", "data": {"body": new_body}})
    events.append({"type": "MetadataChanged", "article": "story", "data": {"set": {"byline": "B"}}})
    events += [{"type": "ArticleEdited", "article": "story", "data": {"title": f"Story {n}"}} for n in range(4, 251)]
    with ledger.open(tmp_path / "store", create=True) as led:
        for event in events:
            led.append([event])
        with Site(led) as served:
            diff = httpx.get(served.url + "/a/story/diff/1..2", timeout=DEADLINE).text
            assert 'class="change moved"' in diff and "Moved from paragraph 2, and edited" in diff
            assert '<del><span class="vh">removed: </span>two</del><ins><span class="vh">added: </span>three</ins>' in diff
            assert 'class="change rewritten"' in diff and "A paragraph moved from here" in diff
            assert "Metadata changed: byline." in httpx.get(served.url + "/a/story/diff/2..3", timeout=DEADLINE).text
            pages = [httpx.get(served.url + f"/a/story/history.json?page={n}", timeout=DEADLINE).json() for n in (1, 2, 3)]
            assert [len(p["versions"]) for p in pages] == [100, 100, 50] and pages[0]["pages"] == 3
            assert pages[0]["versions"][0]["version"] == 250 and pages[2]["versions"][-1]["version"] == 1
            history = httpx.get(served.url + "/a/story/history?page=2", timeout=DEADLINE).text
            assert "Page 2 of 3" in history and 'href="/a/story/history?page=3"' in history


def test_a_withdrawn_articles_stint_says_so_on_its_category_page(tmp_path: Path) -> None:
    with ledger.open(tmp_path / "store", create=True) as led:
        led.append([{"type": "ArticleCreated", "article": "gone", "data": {"title": "Gone", "categories": ["local"]}}])
        led.append([{"type": "ArticleCreated", "article": "here", "data": {"title": "Here", "categories": ["local"]}}])
        led.withdraw("gone", reason="legal")
        with Site(led) as served:
            page = httpx.get(served.url + "/c/local", timeout=DEADLINE).text
    rows = page.split("Membership over time")[1].split("</tr>")
    assert "withdrawn (still in, not listed)" in next(row for row in rows if "/a/gone" in row)
    assert "still in" in next(row for row in rows if "/a/here" in row) and "withdrawn" not in next(row for row in rows if "/a/here" in row)


def _serve(store: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    """`ledger serve` as a process on a free port; returns it and its address once it answers."""
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cli = Path(sys.executable).with_name("ledger")
    process = subprocess.Popen([str(cli), "--store", str(store), "serve", "--port", str(port), *options], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            httpx.get(url + "/favicon.ico", timeout=DEADLINE)
            return process, url
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline, "ledger serve did not start"
            time.sleep(0.05)


@pytest.mark.parametrize("options", [(), ("--host", "0.0.0.0")])
def test_the_serve_command(tmp_path: Path, options: tuple[str, ...]) -> None:
    with examples_store(tmp_path / "store"):
        pass
    process, url = _serve(tmp_path / "store", *options)
    try:
        assert "Harbour bridge" in httpx.get(url + "/", timeout=DEADLINE).text
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=DEADLINE)
    assert f"ledger viewer on http://{options[1] if options else '127.0.0.1'}:" in stderr
    assert ("warning: listening on 0.0.0.0" in stderr) == bool(options)


def test_serve_without_a_store_says_so(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("ledger")
    done = subprocess.run([str(cli), "--store", str(tmp_path / "none"), "serve"], capture_output=True, text=True, timeout=DEADLINE, check=False)
    assert done.returncode == 6 and "none" in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.parametrize(("path", "status"), [
    (f"/a/{ARTICLE}/diff/²..3", 400), (f"/a/{ARTICLE}/diff/1..³", 400), (f"/a/{ARTICLE}/history?page=²", 400),
    (f"/a/{ARTICLE}/v/99999999999999999999999", 404), (f"/a/{ARTICLE}/diff/1..99999999999999999999", 404),
    (f"/a/{ARTICLE}?at=%3Cscript%3E", 400), (f"/a/{ARTICLE}/diff?from=²&to=3", 303), ("/feed?since=%00", 400),
    ("/categories?at=9999-99-99", 400), ("/c/%00", 404),
])
def test_odd_input_is_refused_plainly(site: Site, path: str, status: int) -> None:
    response = get(site, path, follow_redirects=False)
    assert response.status_code == status, (path, response.text[-300:])
    assert "<script>" not in response.text and "Traceback" not in response.text


def test_serve_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    import socket

    with examples_store(tmp_path / "store"), socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cli = Path(sys.executable).with_name("ledger")
        done = subprocess.run([str(cli), "--store", str(tmp_path / "store"), "serve", "--port", str(port)], capture_output=True, text=True, timeout=DEADLINE, check=False)
    assert done.returncode == 3 and done.stderr == f"error: cannot listen on 127.0.0.1 port {port}: Address already in use\n"



def test_every_link_to_an_odd_name_reaches_its_page(tmp_path: Path) -> None:
    # An id ending in `.json` was linked as `/a/x.json`, which asks for JSON of `x`; a category
    # with a `/` 404ed and one named `..` was taken out of its path by the browser.
    (tmp_path / "report.json.md").write_text("---\ntitle: Report\ncategories: [news/local, '..', plain, data.json]\n---\n\n"
                                             "## _(Update 4-May)_ Opening delayed\n\nLater.\n", encoding="utf-8")
    with ledger.open(tmp_path / "store", create=True) as led:
        ledger.ingest(led, [tmp_path / "report.json.md"], article="report.json")
        with Site(led) as served:
            index = httpx.get(served.url + "/", timeout=DEADLINE).text
            assert 'href="/a/report.json.html"' in index
            for name in ("news/local", "..", "plain", "data.json"):
                href = {"news/local": "/c/news%2Flocal", "..": "/c?name=..", "plain": "/c/plain", "data.json": "/c/data.json.html"}[name]
                assert f'href="{href}"' in index
                page = httpx.get(served.url + href, timeout=DEADLINE)
                assert page.status_code == 200 and f"Category “{name}”" in page.text, href
            # As of a time, from the list of categories and from a category's own form.
            listing = httpx.get(served.url + "/categories?at=2030-01-01", timeout=DEADLINE).text
            assert 'href="/c?name=..&amp;at=2030-01-01"' in listing and 'href="/c/plain?at=2030-01-01"' in listing
            assert httpx.get(served.url + "/c?name=..&at=2030-01-01", timeout=DEADLINE).status_code == 200
            assert '<input type="hidden" name="name" value="..">' in httpx.get(served.url + "/c?name=..", timeout=DEADLINE).text
            page = httpx.get(served.url + "/a/report.json.html", timeout=DEADLINE)
            assert page.status_code == 200 and "<h1>Report</h1>" in page.text
            # The update block's heading as a heading reads, not as its Markdown marks.
            assert '<h2 id="update-1"><em>(Update 4-May)</em> Opening delayed</h2>' in page.text
            assert httpx.get(served.url + "/a/report.json.json", timeout=DEADLINE).json()["article"] == "report.json"
            # A page number past any page is not found (its offset overflowed SQLite: a 500).
            for path in ("/?page=100000000000000000", "/?category=plain&page=100000000000000000"):
                assert httpx.get(served.url + path, timeout=DEADLINE).status_code == 404, path
