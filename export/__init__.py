"""Connectivity-matrix export: read from the graph in pages, written as CSV, Parquet, Arrow, NPZ
or Matrix Market.

    request   what is asked for (MatrixRequest), limits, errors, the Chunk passed along
    queries   the Cypher
    matrix    check a request (prepare), then stream its entries to a writer (write)
    formats   one writer per file format
    stream    the bytes of an export as an iterator, written by a worker thread
    inline    small matrices read whole, for the GraphQL field
"""
