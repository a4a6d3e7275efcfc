"""`/docs` works offline: Swagger UI and its assets are served by the service itself."""

import re
from html.parser import HTMLParser

import httpx
import pytest

STATIC_PREFIX = "/_docs-static/"


class _AssetCollector(HTMLParser):
    """Collects every `src` and `href` attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.urls.append((tag, value))


async def _docs_html(client: httpx.AsyncClient) -> str:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def _asset_urls(html: str) -> list[tuple[str, str]]:
    collector = _AssetCollector()
    collector.feed(html)
    return collector.urls


async def test_docs_page_is_swagger_ui(client: httpx.AsyncClient) -> None:
    html = await _docs_html(client)

    assert "<title>test service - Swagger UI</title>" in html
    assert 'id="swagger-ui"' in html
    assert "SwaggerUIBundle(" in html
    assert "url: '/openapi.json'" in html


async def test_docs_references_only_local_assets(client: httpx.AsyncClient) -> None:
    html = await _docs_html(client)
    urls = _asset_urls(html)

    assert urls, "the page references no assets"
    for _tag, url in urls:
        assert url.startswith(STATIC_PREFIX), url
    tags = {tag for tag, _ in urls}
    assert {"script", "link"} <= tags
    assert "cdn" not in html.lower()
    assert "http://" not in html
    assert "https://" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']//""", html)


async def test_docs_assets_are_served(client: httpx.AsyncClient) -> None:
    html = await _docs_html(client)
    served: dict[str, str] = {}

    for _tag, url in _asset_urls(html):
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.content, url
        served[url] = response.headers["content-type"]

    scripts = [url for url, kind in served.items() if url.endswith(".js")]
    styles = [url for url, kind in served.items() if url.endswith(".css")]
    assert scripts
    assert styles
    for url in scripts:
        assert "javascript" in served[url], (url, served[url])
    for url in styles:
        assert served[url].startswith("text/css"), (url, served[url])


async def test_swagger_bundle_is_the_real_thing(client: httpx.AsyncClient) -> None:
    js = await client.get(f"{STATIC_PREFIX}swagger-ui-bundle.js")
    css = await client.get(f"{STATIC_PREFIX}swagger-ui.css")

    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "SwaggerUIBundle" in js.text
    assert len(js.content) > 100_000
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert ".swagger-ui" in css.text


async def test_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "test service"
    assert "/api/v1/tasks/{name}/$execute" in schema["paths"]
    assert "/docs" not in schema["paths"]


async def test_oauth2_redirect_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/oauth2-redirect")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "https://" not in response.text


@pytest.mark.parametrize(
    "path", [f"{STATIC_PREFIX}missing.js", f"{STATIC_PREFIX}%2E%2E/%2E%2E/__init__.py"]
)
async def test_unknown_static_files_are_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 404


async def test_redoc_is_not_served_from_a_cdn(client: httpx.AsyncClient) -> None:
    response = await client.get("/redoc")

    assert response.status_code == 404
