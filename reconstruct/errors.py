"""Errors raised for bad input; the CLI turns them into a message and a non-zero exit."""

from __future__ import annotations


class ReconstructError(Exception):
    """Bad input or an unreadable file; the message names the file or field at fault."""
