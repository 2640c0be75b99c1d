"""Names and raw-file readings shared by the browser-page tests (tests/graphql_api/web)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

WEB_PUBLIC = "t_web_public"
WEB_PRIVATE = "t_web_private"
WEB_EM = "t_web_em"
WEB_EM_PRIVATE = "t_web_em_private"


def connections(folder: Path) -> pd.DataFrame:
    """The chemical connections of a neuPrint folder, with both ends' types (pandas only)."""
    neurons = pd.read_csv(folder / "neurons.csv")
    conn = pd.read_csv(folder / "connections.csv")
    conn = conn[conn["kind"] == "chemical"]
    types = neurons.set_index("bodyId")["type"]
    return conn.assign(preType=conn["bodyId_pre"].map(types),
                       postType=conn["bodyId_post"].map(types))
