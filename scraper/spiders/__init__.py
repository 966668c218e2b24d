"""Spiders: they crawl; page objects in scraper.pages parse."""
