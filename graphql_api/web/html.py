"""The pages' HTML: one plain layout, tables and images inline; no script, nothing external."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
nav a { margin-right: 1em; } table { border-collapse: collapse; margin: .5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: .2em .6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }
img { max-width: 100%; } .note { color: #666; font-size: .9em; }
"""


def layout(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<link rel="icon" href="data:,"><style>{STYLE}</style></head>
<body><nav><a href="/datasets">datasets</a><a href="/graphql">GraphiQL</a>
<a href="/docs">API docs</a></nav>
<h1>{escape(title)}</h1>
{body}
</body></html>"""


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], table_id: str,
          text_columns: int = 0) -> str:
    """A table; cells are escaped unless given as `Raw`. The first `text_columns` columns
    are left-aligned."""
    def cell(value: Any, i: int, tag: str) -> str:
        cls = ' class="text"' if i < text_columns else ""
        shown = value.html if isinstance(value, Raw) else escape(_fmt(value))
        return f"<{tag}{cls}>{shown}</{tag}>"

    head = "".join(cell(h, i, "th") for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell(v, i, "td") for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return str(value)
    return "" if value is None else str(value)


class Raw:
    """Trusted HTML for a table cell (built here from escaped parts)."""

    def __init__(self, html: str) -> None:
        self.html = html


def link(href: str, text: Any) -> Raw:
    return Raw(f'<a href="{escape(href, quote=True)}">{escape(_fmt(text))}</a>')


def figure(uri: str, caption: str, fig_id: str) -> str:
    return (f'<figure id="{fig_id}"><img src="{uri}" alt="{escape(caption, quote=True)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def graphiql_link(query: str) -> str:
    return "/graphql?query=" + quote(query, safe="")
