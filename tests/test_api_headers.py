"""What a browser may do with kgrec's answers: ``nosniff`` on every response, and on the HTML
pages a Content-Security-Policy that allows exactly what the pages use (this origin's stylesheet
and script, the inline SVG drawings, a data: favicon, the lookup form) and nothing else: no
inline script or style, no other origin, no framing. Checked on the rendered pages themselves."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from kgrec.api.app import create_app
from kgrec.api.response_headers import CSP
from kgrec.api.settings import Settings
from tests.api_fixtures import fill_store, fresh_server, train_bundle


@pytest.fixture(scope="module")
def client(snapshot, synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("headers")
    bundle = train_bundle(snapshot, root / "bundle")
    store = fill_store(synthetic.records, root / "store")
    return create_app(Settings(bundle=str(bundle), store=store), server=fresh_server(bundle)).test_client()


class Uses(HTMLParser):
    """Every resource a page loads and everything CSP would have to allow inline."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[tuple[str, str]] = []
        self.inline: list[str] = []
        self.forms: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}>")
            if value and value.strip().lower().startswith("javascript:"):
                self.inline.append(f"<{tag} {name}=javascript:>")
        if tag == "script":
            if a.get("src"):
                self.loads.append(("script", a["src"] or ""))
            else:
                self.inline.append("<script> without src")
        elif tag == "style":
            self.inline.append("<style>")
        elif tag == "link" and a.get("href"):
            self.loads.append((a.get("rel") or "", a["href"] or ""))
        elif tag in ("img", "iframe", "object", "embed", "video", "audio", "source"):
            self.loads.append((tag, a.get("src") or ""))
        elif tag == "form":
            self.forms.append(a.get("action"))


def test_the_pages_load_only_what_the_csp_allows(client, snapshot):
    """Every page: its own stylesheet and script ('self'), a data: favicon (img-src data:), a form
    that stays on this origin, and nothing inline that CSP would block."""
    assert "script-src 'self'" in CSP and "style-src 'self'" in CSP and "img-src 'self' data:" in CSP
    assert "default-src 'none'" in CSP and "frame-ancestors 'none'" in CSP and "form-action 'self'" in CSP
    pages = ["/ui/", f"/ui/users/{snapshot.users.ids[0]}", f"/ui/items/{snapshot.items.ids[0]}", "/ui/items/ghost"]
    kinds = set()
    for path in pages:
        resp = client.get(path)
        assert resp.mimetype == "text/html" and resp.status_code in (200, 404), path
        assert resp.headers["Content-Security-Policy"] == CSP
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        uses = Uses()
        uses.feed(resp.get_data(as_text=True))
        assert uses.inline == [], (path, uses.inline)
        assert all(action in (None, "") or action.startswith("/") for action in uses.forms)
        for kind, url in uses.loads:
            kinds.add(kind)
            if kind == "icon":
                assert url.startswith("data:"), url
            else:  # same origin: a path, never a scheme or //host
                assert re.match(r"^/(?!/)", url), (path, kind, url)
                asset = client.get(url)
                assert asset.status_code == 200 and asset.headers["X-Content-Type-Options"] == "nosniff"
                assert "Content-Security-Policy" not in asset.headers
    assert {"stylesheet", "script", "icon"} <= kinds


def test_the_script_needs_nothing_the_csp_forbids(client):
    """copy.js: no eval, no inline handlers it would add, no requests to other origins."""
    js = client.get("/ui/static/copy.js").get_data(as_text=True)
    for forbidden in ("eval(", "new Function", "setAttribute(\"on", "fetch(", "XMLHttpRequest", "innerHTML"):
        assert forbidden not in js, forbidden


def test_json_answers_are_not_sniffed_and_carry_no_page_policy(client):
    for path in ("/v1/health", "/v1/models", "/v1/users/nobody-at-all/recommendations", "/v1/nothing"):
        resp = client.get(path)
        assert resp.mimetype == "application/json" and resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in resp.headers
        assert "X-Kgrec-Store" not in resp.headers  # the memory store answers
