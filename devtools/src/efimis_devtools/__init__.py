"""Efimis development tools: a stand-in SQL Server (TDS) for tests and demos, never part of the service.

`efimis-etl dev-sql-server` runs it (`tds_cli`); tests start it in a child process
(`tds_server.TdsServerProcess`). It lives outside `efimis_etl` so that the service's runtime does not
depend on it or on sqlglot.
"""
