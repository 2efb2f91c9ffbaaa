"""The schema reference (Markdown or HTML), generated from the schema model like the DDL itself."""

from __future__ import annotations

import html
import itertools
import re
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from efimis_etl.schema.model import (
    ALL_TABLES,
    ENUMERATIONS,
    REFERENCE_LENGTH,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    Column,
    Entity,
)
from efimis_etl.schema.tables import source_type_name
from efimis_etl.validation.catalogue import RULES

HEADER = ("Column", "Type", "Required", "References", "Description")

INTRODUCTION = f"""\
Efimis ETL reads these tables from schema `{SCHEMA_NAME}` of your SQL Server database. Create them with
`Efimis-{SCHEMA_VERSION}.sql`, fill them, and submit a connection string to `POST /etl/import`. A read-only
login (db_datareader) is enough.

- **ImportId** identifies a row within its table. Use the source system's id, or generate one. Importing
  the same ImportId again (in a later import) updates the object rather than adding another.
- **References** (columns ending in `Id`) hold either the ImportId of a row of the referenced table in this
  import or of an object promoted earlier, or a platform reference `prefix_uniqueid` such as
  `matter_22635a10c993592cb52c083f346aa950` (the lowercase table name, an underscore and the 32-hex-digit
  platform id, as listed by `GET /etl/import/{{requestId}}/id-map`). A value of that form is always read as a
  platform reference, so don't give ImportIds that shape.
- **Money** is DECIMAL(19,4); **enumerations** are INT columns holding the values listed below.
- Dates are DATE (`YYYY-MM-DD`); booleans are BIT (0 or 1).
"""


def _type(column: Column) -> str:
    if column.enumeration is not None:
        return f"{source_type_name(column)} ({column.enumeration.name})"
    return source_type_name(column)


def _rows(entity: Entity) -> list[tuple[str, ...]]:
    return [
        (
            c.name,
            _type(c),
            "yes" if c.required else "",
            c.target or "",
            c.description,
        )
        for c in entity.all_columns
    ]


def render_markdown() -> str:
    out = [f"# Efimis ETL schema {SCHEMA_VERSION} reference", "", INTRODUCTION, "## Tables", ""]
    for entity in ALL_TABLES:
        out += [f"### {SCHEMA_NAME}.{entity.name}", "", entity.description, ""]
        if entity.importable:
            out += [f"Platform reference prefix: `{entity.prefix}_`", ""]
        out += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in _rows(entity)]
        out.append("")
    out += ["## Enumerations", ""]
    for enumeration in ENUMERATIONS:
        note = "" if enumeration.supported else " *(not importable yet)*"
        out += [
            f"### {enumeration.name}{note}",
            "",
            enumeration.description,
            "",
            "| Value | Name | Description |",
        ]
        out += ["|---|---|---|"] + [f"| {v.value} | {v.name} | {v.description} |" for v in enumeration.values]
        out.append("")
    out += [
        "## Validation rules",
        "",
        "| Code | Severity | What it finds | What to do |",
        "|---|---|---|---|",
    ]
    out += [f"| `{r.code}` | {r.severity} | {r.title} | {r.fix} |" for r in RULES.values()]
    out += ["", f"References are NVARCHAR({REFERENCE_LENGTH}).", ""]
    return "\n".join(out)


def render_html(stylesheet_url: str | None = None) -> str:
    """The Markdown reference as an HTML page: rendered from the same text, so the two never disagree.

    The page links the style sheet at `stylesheet_url` (the service's `/static/efimis.css`); without one
    (a file written by the CLI) it carries the style sheet's text itself."""
    markdown = _markdown()
    tokens = markdown.parse(render_markdown())
    headings = _label_headings(tokens)
    _badge_severities(tokens)
    body = markdown.renderer.render(tokens, markdown.options, {})
    title, _, rest = body.partition("</h1>\n")
    e = html.escape
    if stylesheet_url is None:
        style = f"<style>{STYLESHEET.read_text(encoding='utf-8')}</style>"
    else:
        style = f'<link rel="stylesheet" href="{e(stylesheet_url)}">'
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Efimis ETL schema {e(SCHEMA_VERSION)} reference</title>{style}</head>\n"
        f"<body><main>\n{title}</h1>\n{_contents(headings)}{rest}</main></body></html>\n"
    )


STYLESHEET = Path(__file__).resolve().parent / "api" / "static" / "efimis.css"
SEVERITY_BADGES = {"error": "badge-error", "warning": "badge-warn"}


def _markdown() -> MarkdownIt:
    # Raw HTML in the text is shown as text, never passed through.
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    # Wide tables scroll inside their box on a narrow screen instead of widening the page.
    markdown.add_render_rule("table_open", lambda *_: '<div class="table-wrap"><table>\n')
    markdown.add_render_rule("table_close", lambda *_: "</table></div>\n")
    return markdown


def _label_headings(tokens: list[Token]) -> list[tuple[int, str, str]]:
    """Give every heading an id to link to; (level, text, id) of each, in order."""
    headings = []
    for opening, inline in itertools.pairwise(tokens):
        if opening.type == "heading_open" and inline.type == "inline":
            text = "".join(child.content for child in inline.children or [])
            anchor = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
            opening.attrSet("id", anchor)
            headings.append((int(opening.tag[1]), text, anchor))
    return headings


def _contents(headings: list[tuple[int, str, str]]) -> str:
    """A list of links to the sections (h2) and the tables and enumerations in them (h3)."""
    e = html.escape
    sections: list[tuple[str, str, list[str]]] = []
    for level, text, anchor in headings:
        if level == 2:
            sections.append((text, anchor, []))
        elif level == 3 and sections:
            sections[-1][2].append(f'<li><a href="#{e(anchor)}">{e(text)}</a></li>')
    items = "".join(
        f'<li><a href="#{e(anchor)}">{e(text)}</a>' + (f"<ul>{''.join(sub)}</ul>" if sub else "") + "</li>"
        for text, anchor, sub in sections
    )
    return f'<nav class="toc" aria-label="Contents"><ul>{items}</ul></nav>\n'


def _badge_severities(tokens: list[Token]) -> None:
    """A rule's severity as a badge, so that errors and warnings stand apart at a glance."""
    in_cell = False
    for token in tokens:
        if token.type == "td_open":
            in_cell = True
        elif token.type == "td_close":
            in_cell = False
        elif in_cell and token.type == "inline" and token.content in SEVERITY_BADGES:
            badge = Token("html_inline", "", 0)
            badge.content = (
                f'<span class="{SEVERITY_BADGES[token.content]}">{html.escape(token.content)}</span>'
            )
            token.children = [badge]
