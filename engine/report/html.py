"""The HTML template of the report: escaping, tables, figures, sections, the page.

Everything is inline (CSS in a ``<style>`` element, figures as base64 data
URIs): the page is one file that opens anywhere, offline, and can be mailed.
"""

from __future__ import annotations

import base64
import html
import numbers
from collections.abc import Callable, Iterable, Mapping

import pandas as pd

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #222; margin: 0; background: #fafafa; }
header { background: #23395d; color: #fff; padding: 1.2em 2em 0.8em; }
header h1 { margin: 0 0 0.3em; font-size: 1.6em; }
header p { margin: 0.2em 0; }
nav { margin-top: 0.8em; }
nav a { color: #cfe0ff; margin-right: 1.2em; text-decoration: none; }
nav a:hover { text-decoration: underline; }
main { padding: 0 2em 2em; max-width: 1200px; }
section { background: #fff; border: 1px solid #e2e2e2; border-radius: 6px;
          padding: 0.4em 1.4em 1.2em; margin-top: 1.4em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #e2e2e2; padding-bottom: 0.3em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
p.note { color: #555; font-size: 0.92em; }
.warning { background: #fff4e0; border-left: 4px solid #e69500; padding: 0.4em 0.8em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
caption { text-align: left; color: #555; padding-bottom: 0.3em; white-space: nowrap; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #e8e8e8; text-align: left;
         vertical-align: top; }
th { background: #f2f4f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td small { color: #666; }
tr.significant td { background: #eef7ee; }
.grid { display: flex; flex-wrap: wrap; gap: 0 2em; align-items: flex-start; }
figure { margin: 0.8em 0; display: inline-block; vertical-align: top; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.maps figure { width: calc(50% - 1em); min-width: 480px; }
figcaption { color: #555; font-size: 0.9em; }
details summary { cursor: pointer; color: #23395d; margin: 0.6em 0; }
footer { color: #888; font-size: 0.85em; padding: 1em 2em 2em; }
"""


class Html(str):
    """Text that is already HTML: :func:`escape` leaves it unchanged."""


def escape(value: object) -> Html:
    """``value`` as HTML text (special characters escaped unless it is :class:`Html`)."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value)))


def join(parts: Iterable[object]) -> Html:
    """Concatenate HTML parts (plain strings are escaped)."""
    return Html("".join(escape(part) for part in parts))


def tag(name: str, *content: object, **attributes: object) -> Html:
    """An element; ``class_`` stands for ``class``; ``None`` attributes are left out."""
    attrs = "".join(f' {key.rstrip("_")}="{html.escape(str(value))}"'
                    for key, value in attributes.items() if value is not None)
    return Html(f"<{name}{attrs}>{join(content)}</{name}>")


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(png: bytes, caption: str, alt: str | None = None) -> Html:
    """An embedded PNG with a caption."""
    image = Html(f'<img src="{data_uri(png)}" alt="{html.escape(alt or caption)}">')
    return tag("figure", image, tag("figcaption", caption))


def format_value(value: object) -> str:
    """Numbers to short text: integers as such, floats with 4 significant digits."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return "" if pd.isna(value) else f"{float(value):.4g}"
    return str(value)


def format_p(p: float) -> str:
    """A p-value: three decimals, or scientific notation below 0.001."""
    if pd.isna(p):
        return ""
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def table(frame: pd.DataFrame, *, caption: str | None = None,
          formats: Mapping[str, Callable[[object], object]] | None = None,
          row_class: Callable[[pd.Series], str | None] | None = None,
          right: Iterable[str] = ()) -> Html:
    """A table of a DataFrame's columns (its index is left out).

    ``formats`` maps a column to a function of a cell (default
    :func:`format_value`); numeric columns and those in ``right`` are
    right-aligned; ``row_class`` gives an optional CSS class per row.
    """
    formats = formats or {}
    numeric = {column for column in frame.columns
               if pd.api.types.is_numeric_dtype(frame[column])} | set(right)
    head = tag("thead", tag("tr", *(tag("th", column) for column in frame.columns)))
    rows = []
    for _, row in frame.iterrows():
        cells = [tag("td", formats.get(column, format_value)(row[column]),
                     class_="num" if column in numeric else None) for column in frame.columns]
        rows.append(tag("tr", *cells, class_=row_class(row) if row_class else None))
    parts = [tag("caption", caption)] if caption else []
    return tag("div", tag("table", *parts, head, tag("tbody", *rows)), class_="scroll")


def key_values(values: Mapping[str, object], caption: str) -> Html:
    """A two-column table of names and values; nested mappings become dotted names."""
    rows = [tag("tr", tag("th", key), tag("td", format_value(value)))
            for key, value in flatten(values).items()]
    return tag("table", tag("caption", caption), tag("tbody", *rows))


def flatten(values: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """``{"a": {"b": 1}}`` to ``{"a.b": 1}``; lists become comma-separated text."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = ", ".join(format_value(item) for item in value)
        else:
            flat[name] = value
    return flat


def section(anchor: str, title: str, *content: object) -> Html:
    """A titled section that the navigation links to by ``#anchor``."""
    return tag("section", tag("h2", title), *content, id=anchor)


def page(title: str, header: Iterable[object], sections: list[tuple[str, str, Html]],
         footer: str) -> str:
    """The whole document: header with navigation, the sections, a footer."""
    navigation = tag("nav", *(tag("a", name, href=f"#{anchor}") for anchor, name, _ in sections))
    body = tag("body", tag("header", *header, navigation),
               tag("main", *(section(anchor, name, content)
                             for anchor, name, content in sections)),
               tag("footer", footer))
    head = tag("head", Html('<meta charset="utf-8">'),
               Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
               tag("title", title), tag("style", Html(STYLE)))
    return "<!DOCTYPE html>\n" + tag("html", head, body, lang="en") + "\n"
