"""The read-only web viewer's application: routes, pages and the guard around them.

Every page is a plain GET of a permanent address; the same address gives JSON with
`Accept: application/json` or a `.json` suffix. The pages read through the public `Ledger` API
only, so a version appended by another process is on the next page load.

What every first visit would otherwise pay once per process, compiling the templates and building
the validators of the models the pages read, is done when the application is made (`warm`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import ledger
from ledger import (
    ArticleView,
    Blame,
    BlameSpan,
    HistoryEntry,
    InvalidInputError,
    Ledger,
    NotFoundError,
    SearchHit,
    StoreConnectionError,
    StoreError,
    StoreLockedError,
    WordsChanged,
    format_time,
    render,
)
from ledger.diffs import ProseBlock, ProseDiff
from ledger.web import present

HERE = Path(__file__).resolve().parent
HISTORY_PAGE = 100
"""History rows per page (long histories are paged, newest first)."""
ARTICLES_PAGE = 100
"""Articles per page of the article list."""
SEARCH_PAGE = 100
"""Search hits per page."""
MODELS = ("ArticleView", "UpdateBlock", "ArticleSummary", "CategoryCount", "HistoryEntry", "WordsChanged", "TimelineEntry", "Blame", "BlameSpan", "SearchHit")
"""The models whose validators and serializers the pages use (built by `warm`)."""
FEED_LIMIT = 200
"""Versions the feed lists at most."""
KINDS = ("created", "edited", "block added", "block edited", "block removed", "categories changed", "metadata changed", "withdrawn", "restored")
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class Guard:
    """Around every request: GET and HEAD only (405), a Host header naming this server (400:
    DNS rebinding would otherwise reach a loopback server from a web page), the security headers
    on every response, `.json` at the end of a path meaning `Accept: application/json` and `.html`
    the page (see `_page_href`)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *HEADERS]
            await send(message)

        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.lower() not in self.hosts:
            await _plain(400, "Bad Request: this server answers only to its own host name")(scope, receive, secured)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(405, "Method Not Allowed: the viewer is read-only", {"Allow": "GET, HEAD"})(scope, receive, secured)
            return
        path = scope["path"]
        for suffix, kind in ((".json", b"application/json"), (".html", b"text/html")):
            if path.endswith(suffix) and not path.startswith("/static/"):
                scope = dict(scope, path=path.removesuffix(suffix), headers=[*[(k, v) for k, v in scope["headers"] if k != b"accept"], (b"accept", kind)])
                break
        await self.app(scope, receive, secured)


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(text + "\n", status_code=status, media_type="text/plain", headers=headers)


def _quote(value: str) -> str:
    return quote(value, safe="")


def _page_href(base: str) -> str:
    """The page address `base` (`/a/ID`), unmistakable: an id ending in `.json` or `.html` gets
    `.html` after it, as that suffix would otherwise be read as a format (see `Guard`)."""
    return f"{base}.html" if base.endswith((".json", ".html")) else base


def _category_href(name: str) -> str:
    """A category's page: `/c/NAME` (unmistakable, as `_page_href` makes it), or `/c?name=NAME`
    for `.` and `..`, which browsers take out of a path (escaped or not) before they send it."""
    return f"/c?name={_quote(name)}" if name in (".", "..") else _page_href(f"/c/{_quote(name)}")


def _when(value: datetime | None) -> str:
    """A time as the pages show it, with its zone (UTC, as the log keeps it)."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


class Viewer:
    """The pages over one open `Ledger` (calls into it are serialised: one store, one reader)."""

    def __init__(self, led: Ledger) -> None:
        self.led = led
        self.lock = threading.Lock()
        # A page of an article's history by its latest version's position and the page's first
        # and last versions; a diff by both versions' positions.
        self.histories: present.Kept[tuple[str, int, int, int], tuple[list[HistoryEntry], list[WordsChanged]]] = present.Kept(64)
        self.diffs: present.Kept[tuple[str, int, int, int, int], ProseDiff] = present.Kept(256)
        # A blame by the article's version and its latest version when it was made.
        self.blames: present.Kept[tuple[str, int, int], Blame] = present.Kept(64)
        # Articles' titles by their latest version, for search results.
        self.titles: present.Kept[tuple[str, int], str] = present.Kept(4096)
        # Templates are read once (`warm`): a running server does not look for edited ones.
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True, auto_reload=False,
        )
        self.env.globals.update(q=_quote, when=_when, iso=format_time, kinds=KINDS)
        self.env.filters["q"] = _quote
        self.env.filters["page"] = _page_href
        self.env.filters["category"] = _category_href

    def warm(self) -> None:
        """Compile every template and build the validators of the models the pages read, so that
        the first visitor of a page does not wait for what every process does once (about 100 ms
        on the first diff page otherwise)."""
        for name in self.env.list_templates(extensions=["html"]):
            self.env.get_template(name)
        for name in MODELS:
            getattr(ledger, name).model_rebuild()

    # --- responses ---------------------------------------------------------------------------

    def page(self, request: Request, template: str, data: Callable[[], Any], status: int = 200, **context: Any) -> Response:
        """The page as HTML, or `data()` as JSON when the client asks for JSON (made only then:
        a long diff's JSON takes longer to make than its page)."""
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(data(), status_code=status)
        html = self.env.get_template(template).render(request=request, path=request.url.path, **context)
        return HTMLResponse(html, status_code=status)

    # --- pages ---------------------------------------------------------------------------------

    def index(self, request: Request) -> Response:
        """Every article, most recently changed first; search by id or title, filter by category."""
        query = request.query_params.get("q", "").strip()
        category = request.query_params.get("category", "").strip()
        page = _page_number(request.query_params.get("page", "1"))
        with self.lock:
            categories = self.led.categories()
            if query:
                # Matched on id or title in Python: every row is read (the catalog has no text search).
                needle = query.casefold()
                rows = [row for row in self.led.articles(category=category or None) if needle in row.article.casefold() or needle in row.title.casefold()]
                total, shown = len(rows), rows[(page - 1) * ARTICLES_PAGE : page * ARTICLES_PAGE]
            else:
                # Only the page's rows are read: a store of 100k articles lists as fast as a small one.
                total = self.led.count_articles(category=category or None)
                shown = self.led.articles(category=category or None, limit=ARTICLES_PAGE, offset=(page - 1) * ARTICLES_PAGE)
        pages = _pages(total, ARTICLES_PAGE, page, "article list")

        def data() -> dict[str, Any]:
            return {"page": page, "pages": pages, "total": total, "articles": [row.model_dump(mode="json") for row in shown]}

        return self.page(
            request, "index.html", data, rows=shown, total=total, page=page, pages=pages, query=query, category=category, categories=categories,
        )

    def feed(self, request: Request) -> Response:
        """Recent changes, newest first: filters by category, time range and kind of change."""
        params = request.query_params
        since, until = params.get("since", "").strip(), params.get("until", "").strip()
        category, kind = params.get("category", "").strip(), params.get("kind", "").strip()
        if kind and kind not in KINDS:
            raise InvalidInputError(f"kind {kind!r} is not one of: {', '.join(KINDS)}")
        with self.lock:
            members = {row.article for row in self.led.articles(category=category)} if category else None
            categories = self.led.categories()
            # Without filters the first FEED_LIMIT versions are all the page shows. With them, the
            # newest versions are read in windows growing fourfold until the page is full (the whole
            # timeline of a large store took seconds, for a page that needed its last hour).
            limit = FEED_LIMIT
            while True:
                entries = self.led.timeline(since=since or None, until=until or None, limit=limit)
                picked = [e for e in entries if (not kind or kind in e.changes) and (members is None or e.article in members)][:FEED_LIMIT]
                if len(picked) == FEED_LIMIT or len(entries) < limit:
                    break
                limit *= 4
            # Each entry names the title its version had; the title now only stands in where the
            # views could not say (and only for the articles shown: listing all cost 0.8 s on 100k).
            titles = {article: self._title(article) for article in dict.fromkeys(e.article for e in picked if e.title is None)}

        def data() -> dict[str, Any]:
            return {"entries": [e.model_dump(mode="json") for e in picked]}

        return self.page(request, "feed.html", data, entries=picked, titles=titles, since=since, until=until, category=category, kind=kind, categories=categories, limit=FEED_LIMIT)

    def article(self, request: Request) -> Response:
        """An article now, at a version (`/a/ID/v/N`) or as of a time (`?at=`), rendered or as source."""
        article = request.path_params["article"]
        version = request.path_params.get("version")
        at = request.query_params.get("at", "").strip() or None
        source = request.query_params.get("view") == "source"
        with self.lock:
            latest = self.led.article(article)
            view = self.led.article(article, version=version, at=at if version is None else None)
            markdown = present.is_markdown(view)
            ids: set[str] = set()
            body = None if source else present.render_text(view.body, markdown, ids=ids)
            blocks = [
                (block, present.render_heading(block.heading, markdown), present.render_text(block.text, markdown, top=3, ids=ids))
                for block in view.blocks
            ]
            draft = render(view) if source else None

        def data() -> dict[str, Any]:
            return {**view.model_dump(mode="json"), "latest_version": latest.version}

        return self.page(
            request, "article.html", data, view=view, latest=latest, body=body, blocks=blocks, draft=draft, source=source, at=at,
        )

    def history(self, request: Request) -> Response:
        """Every version, newest first (paged), with words added and removed and compare radios.
        A page asks the ledger for its own versions only: one fold for their history rows and one
        for their word counts, each from the snapshot nearest before them."""
        article = request.path_params["article"]
        page = _page_number(request.query_params.get("page", "1"))
        with self.lock:
            latest = self.led.article(article)
            pages = _pages(latest.version, HISTORY_PAGE, page, "history")
            last = latest.version - (page - 1) * HISTORY_PAGE
            first = max(1, last - HISTORY_PAGE + 1)
            entries, words = self.histories.get(
                (article, latest.position, first, last),
                lambda: (self.led.history(article, first=first, last=last), self.led.word_changes(article, first=first, last=last)),
            )
        counts = {change.version: (change.words_added, change.words_removed) for change in words}
        rows = [(entry, *counts[entry.version]) for entry in reversed(entries)]

        def data() -> dict[str, Any]:
            return {"article": article, "page": page, "pages": pages, "versions": [{**e.model_dump(mode="json"), "words_added": a, "words_removed": r} for e, a, r in rows]}

        return self.page(request, "history.html", data, latest=latest, rows=rows, page=page, pages=pages)

    def compare(self, request: Request) -> Response:
        """The history page's compare form: a redirect to the diff's permanent address."""
        article = request.path_params["article"]
        params = request.query_params
        low, high = params.get("from", "prev"), params.get("to", "cur")
        if _number(low) and _number(high) and int(low) > int(high):
            low, high = high, low
        tail = "?view=side" if params.get("view") == "side" else ""
        return RedirectResponse(f"/a/{_quote(article)}/diff/{_quote(low)}..{_quote(high)}{tail}", status_code=303)

    def diff(self, request: Request) -> Response:
        """Two versions compared word by word, inline or side by side, with a change summary."""
        article = request.path_params["article"]
        spec = request.path_params["spec"]
        side = request.query_params.get("view") == "side"
        with self.lock:
            latest = self.led.article(article)
            low, high = _versions(spec, latest.version)
            old: ArticleView | None = self.led.article(article, version=low) if low else None
            new = self.led.article(article, version=high)
            # Who made each of the two versions, and why: the history of those versions alone.
            entries = [entry for version in sorted({low, high} - {0}) for entry in self.led.history(article, first=version, last=version)]
        key = (article, low, high, old.position if old else 0, new.position)
        result = self.diffs.get(key, lambda: present.diff_views(old, new))
        summary = present.summary(old, new, result)
        shown = present.fold(result)

        def data() -> dict[str, Any]:
            return {
                "article": article, "from_version": low, "to_version": high, "summary": summary,
                "counts": result.counts, "words_added": result.words_added, "words_removed": result.words_removed, "capped": result.capped,
                "title": {"from": old.title if old else None, "to": new.title},
                "blocks": [asdict(block) for block in result.blocks],
            }

        meta = {e.version: e for e in entries}
        return self.page(
            request, "diff.html", data, old=old, new=new, low=low, high=high, latest=latest, summary=summary, shown=shown, side=side,
            meta=meta, runs_html=present.runs_html, whole=present.whole, changes=sum(1 for s in shown if s.block is not None and _is_change(s.block)),
            is_change=_is_change,
        )

    def blame(self, request: Request) -> Response:
        """The article's text now, at a version (`/a/ID/v/N/blame`) or as of a time (`?at=`), each
        run of it attributed to the version that wrote it: a margin naming the versions of each
        line, runs shaded by age (with the version in words where a line has several), and a
        legend of those versions with their time, actor and reason."""
        article = request.path_params["article"]
        version = request.path_params.get("version")
        at = request.query_params.get("at", "").strip() or None
        with self.lock:
            latest = self.led.current_version(article)
            if at is not None and version is None:
                version = self.led.article(article, at=at).version
            # What version N says, and who wrote it, never changes once N is recorded.
            blame = self.blames.get((article, latest if version is None else version, latest), lambda: self.led.blame(article, version=version))
        lines = present.blame_lines(blame)
        legend: dict[int, BlameSpan] = {}
        written: dict[int, int] = {}
        for span in blame.spans:
            legend.setdefault(span.version, span)
            written[span.version] = written.get(span.version, 0) + len(span.text)
        versions = sorted(legend, reverse=True)
        ages = present.ages(set(versions))
        titles = {v: f"v{v}, {_when(legend[v].occurred_at)}" + (f", {legend[v].actor}" if legend[v].actor else "") + (f": {legend[v].reason}" if legend[v].reason else "") for v in versions}
        title = "".join(span.text for span in blame.spans if span.part == "title") or article

        def data() -> dict[str, Any]:
            return {**blame.model_dump(mode="json"), "latest_version": latest}

        return self.page(
            request, "blame.html", data, blame=blame, lines=lines, legend=legend, written=written, versions=versions, ages=ages,
            titles=titles, title=title, latest=latest, at=at, age_count=present.AGES,
        )

    def search(self, request: Request) -> Response:
        """Where a phrase stood in the articles' history: each stretch of versions, the version
        that brought it in and the one that took it out. No phrase: the form alone."""
        params = request.query_params
        phrase = params.get("q", "")
        article = params.get("article", "").strip()
        since = params.get("since", "").strip()
        exact = params.get("exact", "") in ("1", "on", "true")
        page = _page_number(params.get("page", "1"))
        form = {"phrase": phrase, "article": article, "since": since, "exact": exact}
        # A filter not given is null in the JSON, as everywhere else (the form shows it empty).
        given = {**form, "article": article or None, "since": since or None}
        if not phrase.strip():
            return self.page(request, "search.html", lambda: {**given, "hits": []}, form=form, hits=None)
        try:
            with self.lock:
                hits = self.led.search(phrase, article=article or None, since=since or None, exact=exact)
        except (InvalidInputError, NotFoundError) as exc:
            # The form again, with what was wrong: the reader fixes the phrase or the filters.
            status, message = 404 if isinstance(exc, NotFoundError) else 400, str(exc)
            return self.page(request, "search.html", lambda: {"error": message, "status": status}, status=status, form=form, hits=None, error=message)
        pages = _pages(len(hits), SEARCH_PAGE, page, "search results")
        shown = hits[(page - 1) * SEARCH_PAGE : page * SEARCH_PAGE]
        groups: dict[str, list[SearchHit]] = {}
        for hit in shown:
            groups.setdefault(hit.article, []).append(hit)
        with self.lock:
            titles = {name: self._title(name) for name in groups}

        def data() -> dict[str, Any]:
            return {**given, "page": page, "pages": pages, "total": len(hits), "hits": [hit.model_dump(mode="json") for hit in shown]}

        query = "&".join(f"{key}={_quote(value)}" for key, value in (("q", phrase), ("article", article), ("since", since), ("exact", "1" if exact else "")) if value)
        return self.page(request, "search.html", data, form=form, hits=shown, groups=groups, titles=titles, total=len(hits), page=page, pages=pages, query=query)

    def _title(self, article: str) -> str:
        """The article's title now (kept by its latest version: reading the version is cheap)."""
        return self.titles.get((article, self.led.current_version(article)), lambda: self.led.article(article).title)

    def categories(self, request: Request) -> Response:
        """Every category with its number of articles, now or `?at=` a time."""
        at = request.query_params.get("at", "").strip() or None
        with self.lock:
            rows = self.led.categories(at=at)
        return self.page(request, "categories.html", lambda: {"at": at, "categories": [r.model_dump(mode="json") for r in rows]}, rows=rows, at=at)

    def category(self, request: Request) -> Response:
        """A category's articles now or `?at=` a time, and every article's stints in it over time."""
        name = request.path_params.get("name", request.query_params.get("name", ""))
        at = request.query_params.get("at", "").strip() or None
        with self.lock:
            listing = self.led.category(name, at=at)
            stints = self.led.category_stints(name)
            titles = {row.article: row.title for row in self.led.articles()}

        def data() -> dict[str, Any]:
            return {**listing.model_dump(mode="json"), "stints": [s.model_dump(mode="json") for s in stints]}

        return self.page(request, "category.html", data, listing=listing, stints=stints, titles=titles, at=at, name=name)

    def error(self, request: Request, status: int, message: str) -> Response:
        """An error page (or JSON `{"error": ...}`)."""
        return self.page(request, "error.html", lambda: {"error": message, "status": status}, status=status, status_code=status, message=message)


def _is_change(block: ProseBlock) -> bool:
    return block.kind != "same" and not (block.kind == "removed" and block.moved_to is not None)


def _number(text: str) -> bool:
    # str.isdigit alone also accepts digits int() refuses, such as "²".
    return text.isascii() and text.isdigit()


def _pages(total: int, per_page: int, page: int, what: str) -> int:
    """How many pages `total` rows make (at least one); a 404 when `page` is past the last."""
    pages = max(1, -(-total // per_page))
    if page > pages:
        raise HTTPException(404, f"{what} page {page} does not exist (there are {pages})")
    return pages


def _page_number(text: str) -> int:
    if not _number(text) or int(text) < 1:
        raise InvalidInputError(f"page {text!r} is not a page number (1, 2, ...)")
    if int(text) > _LAST_PAGE:
        # Past any page there can be (its rows' offset would not even fit SQLite's integers).
        raise HTTPException(404, f"page {text} does not exist")
    return int(text)


_LAST_PAGE = 10**12


def _versions(spec: str, latest: int) -> tuple[int, int]:
    """The versions `FROM..TO` names: numbers (FROM may be 0, the empty text before the article),
    or `prev` (TO's predecessor), `next` (FROM's successor), `cur` (the latest version)."""
    low_text, dots, high_text = spec.partition("..")
    if not dots:
        # `/diff/N`: version N against its predecessor.
        low_text, high_text = "prev", spec

    def number(text: str, name: str) -> int | None:
        if text == "cur":
            return latest
        if _number(text):
            return int(text)
        if text in ("prev", "next"):
            return None
        raise InvalidInputError(f"{name} {text!r} in the diff address is not a version number, prev, next or cur")

    low, high = number(low_text, "from"), number(high_text, "to")
    if high_text == "prev":
        raise InvalidInputError("'prev' names the version before TO; write it as prev..N")
    if low_text == "next":
        raise InvalidInputError("'next' names the version after FROM; write it as N..next")
    if low is None and high is None:
        raise InvalidInputError("a diff needs at least one version number or cur")
    if low is None:
        assert high is not None
        low = max(high - 1, 0)
    if high is None:
        high = low + 1
    if high > latest or high < 1:
        raise HTTPException(404, f"version {high} does not exist (the article has versions 1 to {latest})")
    if low > latest:
        raise HTTPException(404, f"version {low} does not exist (the article has versions 1 to {latest})")
    return low, high


def create_app(led: Ledger, *, hosts: frozenset[str] = frozenset(LOOPBACK)) -> Starlette:
    """The viewer's ASGI application over `led`, answering to the host names in `hosts`."""
    viewer = Viewer(led)
    viewer.warm()

    def handled(method: Any) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                return method(request)  # type: ignore[no-any-return]
            except NotFoundError as exc:
                return viewer.error(request, 404, str(exc))
            except InvalidInputError as exc:
                return viewer.error(request, 400, str(exc))
            except HTTPException as exc:
                return viewer.error(request, exc.status_code, exc.detail)
            except (StoreConnectionError, StoreLockedError) as exc:
                # The server is down or a writer holds the log: worth trying again later.
                return viewer.error(request, 503, str(exc))
            except StoreError as exc:
                return viewer.error(request, 500, str(exc))

        return endpoint

    def favicon(request: Request) -> Response:
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return viewer.error(request, status, detail)

    routes = [
        Route("/", handled(viewer.index)),
        Route("/feed", handled(viewer.feed)),
        Route("/categories", handled(viewer.categories)),
        Route("/c", handled(viewer.category)),
        Route("/c/{name:path}", handled(viewer.category)),
        Route("/a/{article}", handled(viewer.article)),
        Route("/a/{article}/v/{version:int}", handled(viewer.article)),
        Route("/a/{article}/history", handled(viewer.history)),
        Route("/a/{article}/blame", handled(viewer.blame)),
        Route("/a/{article}/v/{version:int}/blame", handled(viewer.blame)),
        Route("/search", handled(viewer.search)),
        Route("/a/{article}/diff", handled(viewer.compare)),
        Route("/a/{article}/diff/{spec}", handled(viewer.diff)),
        Route("/favicon.ico", favicon),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard, hosts=hosts)], exception_handlers={404: not_found, 405: not_found})

