"""Packaging for Scrapyd eggs (``scrapyd-deploy``): the ``scraper`` package only, never the tests."""

from setuptools import find_packages, setup

setup(
    name="scraper",
    version="0.1.0",
    packages=find_packages(include=["scraper", "scraper.*"]),
    entry_points={"scrapy": ["settings = scraper.settings"]},
    python_requires=">=3.11",
)
