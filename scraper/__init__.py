"""scraper: a production-grade Scrapy crawler (spiders, middlewares, pipelines, local test site)."""

__version__ = "0.1.0"
