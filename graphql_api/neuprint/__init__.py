"""neuPrint-compatible HTTP routes, so neuprint-python scripts run unchanged (docs/neuprint.md)."""
