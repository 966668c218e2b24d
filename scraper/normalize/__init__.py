"""CPU-heavy normalisation of items, in a process pool (``pool``) behind an item pipeline."""
