"""Project commands (``COMMANDS_MODULE``): Scrapy's, where ours must behave differently."""
