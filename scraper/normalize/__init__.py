"""CPU-heavy normalisation of items, in worker processes (``pool``) behind an item pipeline."""
