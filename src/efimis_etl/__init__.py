"""Efimis ETL: source (the firm's SQL Server) → staging → validation → production."""

__version__ = "0.1.0"
