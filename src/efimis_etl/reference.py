"""The schema reference (Markdown or HTML), generated from the schema model like the DDL itself."""

from __future__ import annotations

import html

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


def render_html() -> str:
    e = html.escape
    body = [f"<h1>Efimis ETL schema {e(SCHEMA_VERSION)} reference</h1>"]
    body += [f"<p>{e(p)}</p>" for p in INTRODUCTION.split("\n\n")]
    for entity in ALL_TABLES:
        body.append(
            f'<h2 id="{e(entity.name)}">{e(SCHEMA_NAME)}.{e(entity.name)}</h2><p>{e(entity.description)}</p>'
        )
        body.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in HEADER) + "</tr>")
        for row in _rows(entity):
            body.append("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>")
        body.append("</table>")
    body.append("<h2>Enumerations</h2>")
    for enumeration in ENUMERATIONS:
        note = "" if enumeration.supported else " (not importable yet)"
        body.append(f"<h3>{e(enumeration.name)}{note}</h3><p>{e(enumeration.description)}</p><table>")
        body.append("<tr><th>Value</th><th>Name</th><th>Description</th></tr>")
        body += [
            f"<tr><td>{v.value}</td><td>{e(v.name)}</td><td>{e(v.description)}</td></tr>"
            for v in enumeration.values
        ]
        body.append("</table>")
    body.append(
        "<h2>Validation rules</h2><table><tr><th>Code</th><th>Severity</th><th>What it finds</th><th>What to do</th></tr>"
    )
    body += [
        f"<tr><td>{e(r.code)}</td><td>{e(r.severity)}</td><td>{e(r.title)}</td><td>{e(r.fix)}</td></tr>"
        for r in RULES.values()
    ]
    body.append("</table>")
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Efimis ETL schema {e(SCHEMA_VERSION)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )
