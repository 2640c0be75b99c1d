"""The EM front end: raw tiles -> an aligned, repaired volume, before segmentation.

`stitch` (tiles -> sections), `defects` (what is wrong where: `masks.Defect` flags),
`flow` (patchwise cross-correlation between neighbouring sections), `mesh` (an elastic spring
mesh relaxed against the flows, in JAX), `warp` (maps -> images), `restore` (filling missing
and damaged sections from aligned neighbours, mask-aware contrast normalisation),
`rawdir` (the raw directory on disk) and `prepare` (the whole front end, section by section).
`evaluate` measures each step against the generator's truth (`synth.raw`).
"""
