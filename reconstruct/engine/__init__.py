"""The reconstruction engine: every stage as Dask tasks over 3-D blocks, stitched, resumable.

- `grid`: boxes and block grids; `context`: what a task knows of its run, and its arrays;
  `cluster`: the Dask cluster (found, or a LocalCluster started for the run);
  `manifest`: the run directory's identity and block records; `runner`: a stage's tasks.
- Stages: `image` (section statistics and shifts), `predict` (affinities and clefts),
  `segmentation` (three passes, stitched, relabelled), `pyramid` (the Neuroglancer copy),
  `synapses`, `cells` (somata, skeletons, compartments), `scoring` (against a truth).

Block tasks read TensorStore arrays (any kvstore TensorStore opens: `file://` here, `gs://` or
`s3://` on a cluster) and write whole shards or chunks of their own; what the client keeps between
stages are tables of components and edges, never voxels.
"""
