"""The rule catalogue and the rule units agree: one unit per code, each SQL rule run exactly once, each code
documented, and the SQL compiles for both backends with the tenant's schema put in."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import column
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from efimis_etl.reference import render_markdown
from efimis_etl.schema.model import ENTITIES
from efimis_etl.stores.sql import Pattern, matches
from efimis_etl.validation.catalogue import LEVELS, RULES, declared
from efimis_etl.validation.rules import RUN_ORDER, statements
from efimis_etl.validation.run import compiled_rules
from efimis_etl.validation.tables import PRODUCTION_PLACEHOLDER, staging

READER_RULES = {"type", "precision", "schema-variant", "extra-column"}


def test_every_catalogue_code_has_exactly_one_unit() -> None:
    units = [rule for level in LEVELS for rule in declared(level)]
    codes = Counter(rule.code for rule in units)
    assert [code for code, n in codes.items() if n > 1] == []
    assert set(codes) == set(RULES)
    assert all(RULES[rule.code] is rule for rule in units)


def test_every_rule_with_sql_runs_exactly_once_and_reader_rules_never() -> None:
    scheduled = Counter(rule.code for rules in RUN_ORDER for rule in rules)
    with_sql = {code for code, rule in RULES.items() if rule.finds is not None}
    assert set(RULES) - with_sql == READER_RULES
    assert scheduled == Counter(with_sql)


def test_every_rule_with_sql_writes_findings_somewhere() -> None:
    for code in RULES.keys() - READER_RULES:
        rule = RULES[code]
        statements = [
            statement
            for entity in ENTITIES
            for column_ in (entity.all_columns if rule.per_column else [None])
            for statement in rule.statements(staging(entity.name), column_)
        ]
        assert statements, code


def test_every_unit_is_documented_in_the_schema_reference() -> None:
    markdown = render_markdown()
    for rule in RULES.values():
        assert f"| `{rule.code}` | {rule.severity} | {rule.title} | {rule.fix} |" in markdown


def test_the_rules_compile_for_both_backends_with_the_tenants_schema_quoted() -> None:
    sqlite = compiled_rules(SQLiteDialect_pysqlite, "production")
    postgresql = compiled_rules(PGDialect_psycopg, "tenant_Acme-Legal")
    assert len(sqlite) == len(postgresql) == sum(1 for _ in statements())
    assert any('production."Invoice"' in s for s in sqlite)
    assert any('"tenant_Acme-Legal"."Invoice"' in s for s in postgresql)
    assert not any(PRODUCTION_PLACEHOLDER in s for s in (*sqlite, *postgresql))


def test_patterns_are_part_of_the_compiled_cache_key() -> None:
    value = column("Currency")
    three, two = Pattern(("[A-Z][A-Z][A-Z]",), "^[A-Z]{3}$"), Pattern(("[A-Z][A-Z]",), "^[A-Z]{2}$")
    assert matches(value, three)._generate_cache_key() != matches(value, two)._generate_cache_key()
    assert matches(value, three)._generate_cache_key() == matches(value, three)._generate_cache_key()
