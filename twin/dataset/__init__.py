"""Sharded training datasets (``twin dataset``): configuration, generation, storage,
the local and Ray engines, and a PyTorch loader (docs/DATASETS.md)."""
