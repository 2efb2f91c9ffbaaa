"""Every validation rule: its stable code, severity, what it finds and what the user should do.

Each rule is declared beside the SQL that finds it, in the modules of `validation.rules` by level; the
catalogue lists them level by level, each level in the order its module declares them, as the schema
reference shows them. Codes never change once published (consultants script against them); a rule that is
retired keeps its code unused. Errors block promotion; warnings are reported and do not.
"""

from __future__ import annotations

from types import ModuleType

from efimis_etl.validation.rule import ERROR, WARNING, Rule
from efimis_etl.validation.rules import accounting, cross_table, field, row

__all__ = ["ERROR", "LEVELS", "RULES", "WARNING", "Rule", "declared"]

LEVELS: tuple[ModuleType, ...] = (field, row, cross_table, accounting)


def declared(level: ModuleType) -> list[Rule]:
    """The rules a level's module declares, in its order."""
    return [rule for rule in vars(level).values() if isinstance(rule, Rule)]


RULES: dict[str, Rule] = {rule.code: rule for level in LEVELS for rule in declared(level)}
