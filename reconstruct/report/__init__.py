"""A run directory's report: one self-contained `report.html` (pictures inline, no script, no
outside address) with orthogonal slices of the image under the segmentation and synapses (the
truth beside them when the EM directory has it), the metrics, stage timings, segment size and
skeleton length histograms, ERL per cell, the largest split and merge errors with their
locations, and synapse confidence. `connectome report RUN_DIR` writes it;
`connectome reconstruct` writes it at the end (`build.write_report`)."""
