"""Connectivity-matrix export: read from the graph in pages, written as CSV, Parquet, Arrow, NPZ
or Matrix Market."""
