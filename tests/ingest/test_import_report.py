"""neo4j-admin's own report, read into stage times (what the sources bench prints)."""

from __future__ import annotations

import pytest

from connectome_query.ingest.bulk_import import ImportTimings

REPORT = """(2/4) Relationship import 2026-12-05 03:51:18.540+0000
.......... .......... 100% ∆0ms [9s 432ms]
Relationship import COMPLETED in 9s 439ms

(3/4) Relationship linking 2026-12-05 03:51:27.980+0000
Relationship linking COMPLETED in 1m 3s 630ms

Post processing COMPLETED in 805ms


IMPORT DONE in 1h 2m 30s 143ms.
Imported:
  20000 nodes
"""


def test_stages_are_read_in_seconds() -> None:
    stages = ImportTimings(1.0, 2.0, 3.0, 6.0, admin_output=REPORT).admin_stages()
    assert stages == pytest.approx({"Relationship import": 9.439,
                                    "Relationship linking": 63.63,
                                    "Post processing": 0.805,
                                    "IMPORT DONE": 3600 + 120 + 30.143})


def test_no_report_no_stages() -> None:
    assert ImportTimings(1.0, 2.0, 3.0, 6.0).admin_stages() == {}
