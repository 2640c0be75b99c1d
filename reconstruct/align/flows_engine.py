"""The elastic alignment's flows as engine tasks: one Dask task per pair of sections, resumable.

Which sections serve as references is decided section by section in the driver, from flows
already measured (`elastic.align_stack`), so every pair it may ask for is measured up front
(`elastic.candidate_pairs`): each task reads its two stitched sections and returns the flow on
the node grid (small), recorded under EM_DIR/engine so a rerun skips it. The driver then
relaxes the meshes in order with these flows looked up (`FlowRecords`); a pair without a
record is measured there, so the maps are the same however many tasks finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from connectome_query.reconstruct.align import elastic
from connectome_query.reconstruct.align import flow as flow_
from connectome_query.reconstruct.align.sections_engine import read_stitched
from connectome_query.reconstruct.engine.runner import Engine, Record, Records

FLOWS = "section flows"


@dataclass(frozen=True)
class FlowJob:
    """What a flow task knows: where EM_DIR is, the settings and which sections are good."""

    em_dir: str
    sections: int
    reference_ok: tuple[bool, ...]
    config: elastic.AlignConfig

    def item(self, z: int, r: int) -> int:
        """The pair's block number in the manifest."""
        return z * self.sections + r


def flow_task(item: int, job: FlowJob) -> Record:
    """The flow of section z against reference r (the pair numbered `item`)."""
    z, r = divmod(item, job.sections)
    img, m = read_stitched(Path(job.em_dir), z)
    r_img, r_m = read_stitched(Path(job.em_dir), r)
    blur = elastic.pair_blur(job.reference_ok[z], job.reference_ok[r], job.config)
    f = elastic.pair_flow(r_img, r_m, img, m, blur, job.config)
    return {"yx": f.yx, "peak": f.peak, "shift": np.asarray(f.shift, np.float64)}


@dataclass
class FlowRecords:
    """The recorded flows, looked up by pair (`elastic.FlowLookup`): None for a pair without
    a record."""

    job: FlowJob
    records: Records

    def __call__(self, z: int, r: int) -> flow_.Flow | None:
        item = self.job.item(z, r)
        if not self.records.manifest.done(FLOWS, item):
            return None
        rec = self.records[item]
        return flow_.Flow(rec["yx"], rec["peak"], self.job.config.stride, rec["shift"])


def measure_flows(engine: Engine, job: FlowJob, usable: np.ndarray) -> FlowRecords:
    """Every flow the alignment may ask for, measured as engine tasks (recorded ones skipped)."""
    pairs = elastic.candidate_pairs(usable, np.asarray(job.reference_ok), job.config)
    records = engine.run(FLOWS, [job.item(z, r) for z, r in pairs], flow_task, job)
    return FlowRecords(job, records)
