"""connectome."""
