"""Page objects: parsing that knows HTML, not Scrapy. Spiders only crawl."""
