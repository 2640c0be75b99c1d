"""Flood-filling networks (Januszewski et al. 2018): the model (`model`), inference on a volume
(`inference`), training on synthetic volumes (`training`) and the run's segmentation stage
(`stage`)."""
