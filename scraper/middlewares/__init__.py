"""Downloader and spider middlewares, one per concern."""
