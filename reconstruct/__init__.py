"""Reconstruction from EM: image -> affinities -> segments, synapses, skeletons, compartments,
quality metrics."""
