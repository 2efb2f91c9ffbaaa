"""Validation: the rules an import's staged rows must pass before promotion (`catalogue`, `rules`), and
running them on a staging store and reading their findings back (`run`)."""
