"""Typed, streaming Parquet datasets: schemas from item declarations, atomic part files."""
