"""Reconstruction from EM: image -> affinities -> segments, synapses, skeletons, compartments.

`pipeline.reconstruct` runs it (EM directory in, run directory out; RUN_DIR.md), holding the volume
whole or in slabs (`strategy`); `io` does every file read and write. The steps: `affinity_net`
and `boundary` predict (`prediction` over a whole volume), then `segment`, `synapses`, `skeleton`;
`training`, `scoring` and `metrics` serve them, and `synth` makes volumes with a ground truth.
"""
