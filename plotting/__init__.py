"""Pictures shared by the stages that draw: the API's dataset and neuron pages, a run's
report and `connectome plot` (matplotlib figures, no pyplot state). Imports nothing of ours."""
