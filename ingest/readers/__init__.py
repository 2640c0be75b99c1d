"""Readers: each parses one input format into `ingest.tables.ConnectomeTables`; no database I/O."""
