"""Project settings. Every custom setting is documented in README.md ("Settings")."""

from pathlib import Path

BOT_NAME = "scraper"
SPIDER_MODULES = ["scraper.spiders"]
NEWSPIDER_MODULE = "scraper.spiders"
COMMANDS_MODULE = "scraper.commands"  # `scrapy crawl` whose exit status says how the crawl ended
# `scrapy genspider -t project NAME DOMAIN`: a spider in this project's style (docs/add-a-spider.md).
TEMPLATES_DIR = str(Path(__file__).resolve().parent / "templates")

USER_AGENT = "scraper/0.1 (+https://github.com/scraper-project/scraper)"

# Security baseline: no remote code-execution endpoints unless the user turns them on.
REMOTE_CONTROL_ENABLED = False
TELNETCONSOLE_ENABLED = False
ROBOTSTXT_OBEY = True

CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 8
# Scrapy 2.19 starts CONCURRENT_ITEMS + 1 asyncio tasks for every response's output, however little
# it yields (a product page: one item); 100 (the default) makes asyncio bookkeeping a top cost, and
# 4 instead of 16 gave +16% pages/s. Items still go through the pipelines in parallel: one response's
# outputs 4 at a time, and every response in the scraper at once.
CONCURRENT_ITEMS = 4
# A product page is ~10-50 KB: Scrapy's 1 GiB / 32 MiB would store a runaway page whole (a 50 MB page
# took 1.27 GB of memory). Larger pages are cancelled and dead-lettered ("too_large").
DOWNLOAD_MAXSIZE = 8 * 2**20
DOWNLOAD_WARNSIZE = 2**20

# Scrapy's HTTP/1.1 handler, with a keep-alive pool as large as adaptive concurrency lets a host's
# slot grow (scraper/handlers/http11.py): no new connection per request beyond 8 in flight.
DOWNLOAD_HANDLERS = {
    "http": "scraper.handlers.http11.KeepAliveHTTP11DownloadHandler",
    "https": "scraper.handlers.http11.KeepAliveHTTP11DownloadHandler",
}

# Scrapy's downloader, but a slot's concurrency limit holds (scraper/downloader.py).
DOWNLOADER = "scraper.downloader.Downloader"

# Picks SCHEDULER: delayed retries wait in the scheduler, not in the downloader, in memory or in
# Redis when REDIS_URL is set (scraper/addon.py).
ADDONS = {"scraper.addon.Addon": 0}

DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "scraper.middlewares.robots.RobotsTxtMiddleware": 100,  # Scrapy's, warning about a forbidden start URL
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "scraper.middlewares.retry.BackoffRetryMiddleware": 550,
    "scraper.middlewares.adaptive.AdaptiveConcurrencyMiddleware": 560,
    # Between adaptive (560) and HttpCompression (590): sees decompressed responses before the
    # retry layer does, and picks a proxy only for requests that are really going out now.
    "scraper.middlewares.proxies.RotatingProxyMiddleware": 580,
    "scrapy.downloadermiddlewares.useragent.UserAgentMiddleware": None,
    "scraper.middlewares.useragent.RotatingUserAgentMiddleware": 585,
}

SPIDER_MIDDLEWARES = {
    "scraper.middlewares.malformed.MalformedPageMiddleware": 50,
    "scraper.middlewares.redrive.RedriveMiddleware": 60,  # only with REDRIVE_FROM (`scrapy redrive`)
    "scraper.middlewares.resume.ResumeMiddleware": 70,  # only with JOBDIR
}

ITEM_PIPELINES = {
    "scraper.pipelines.normalize.NormalizePipeline": 300,
    "scraper.pipelines.parquet.ParquetPipeline": 800,
}

EXTENSIONS = {
    "scraper.extensions.settings_check.SettingsCheck": 0,  # Scrapy settings whose errors it would swallow
    "scrapy.extensions.logstats.LogStats": None,  # replaced by the progress line (same LOGSTATS_INTERVAL)
    "scraper.extensions.progress.ProgressLog": 0,
    "scraper.extensions.deadletter.DeadLetterExtension": 0,
    "scraper.extensions.rawarchive.RawArchiveExtension": 0,
    "scraper.extensions.redis_check.RedisCheck": 0,
    "scraper.extensions.monitoring.Monitoring": 0,  # Spidermon's suites, before the outcome they feed
    "scraper.extensions.outcome.CrawlOutcome": 0,  # after ProgressLog: its line is the crawl's last word
    "scraper.extensions.report.RunReport": 0,  # after the outcome: the report shows the exit status
}

# Scrapy's stats collector, also writing the final stats as JSON when STATS_FILE is set (scraper/stats.py).
STATS_CLASS = "scraper.stats.JsonFileStatsCollector"
STATS_FILE = ""

SPIDERMON_ENABLED = True  # close-time checks (scraper.monitors); a failed one fails the run

# Adaptive per-site concurrency (replaces AutoThrottle, which must stay off).
AUTOTHROTTLE_ENABLED = False
ADAPTIVE_CONCURRENCY_ENABLED = True
ADAPTIVE_MIN_CONCURRENCY = 1
ADAPTIVE_MAX_CONCURRENCY = 32
ADAPTIVE_START_CONCURRENCY = 2
ADAPTIVE_DECREASE = 0.5
ADAPTIVE_ERROR_DECREASE = 0.7
ADAPTIVE_LATENCY_TOLERANCE = 1.5
ADAPTIVE_LATENCY_MARGIN = 0.025
ADAPTIVE_RATE_DECREASE = 0.93
ADAPTIVE_RATE_PROBE = 0.01
ADAPTIVE_PACE_JITTER = 0.1
ADAPTIVE_WINDOW = 1.0
ADAPTIVE_LOG_INTERVAL = 60.0

# `scrapy crawl books -O books.parquet` (same schema and conversion code as the pipeline).
FEED_EXPORTERS = {
    "parquet": "scraper.exporters.parquet.ParquetItemExporter",
}

PARQUET_ROW_GROUP_SIZE = 10_000
PARQUET_COMPRESSION = "zstd"
PARQUET_PART_MAX_ROWS = 1_000_000
PARQUET_PART_MAX_BYTES = 256 * 2**20

NORMALIZE_ENABLED = True
# NORMALIZE_WORKERS defaults to the CPU count; 0 runs normalisation inline (debugging, baselines).
NORMALIZE_BATCH_SIZE = 50
NORMALIZE_BATCH_MAX_WAIT = 0.05
NORMALIZE_MP_CONTEXT = "forkserver"

# Retries (Scrapy's RETRY_TIMES, RETRY_HTTP_CODES, RETRY_EXCEPTIONS apply to the error budget).
RETRY_RATELIMIT_HTTP_CODES = [429]
RETRY_RATELIMIT_TIMES = 8
RETRY_BACKOFF_BASE = 0.5
RETRY_BACKOFF_MAX = 60.0
RETRY_BACKOFF_JITTER = "full"
RETRY_AFTER_MAX = 300.0
RETRY_FOR_SECONDS = 60.0  # errors are retried past RETRY_TIMES while a request has failed for less

# Proxy rotation: on when any proxy is configured (PROXY_LIST, PROXY_LIST_FILE or $SCRAPER_PROXIES).
PROXY_LIST: list[str] = []
PROXY_LIST_FILE = None
PROXY_LIST_ENV = "SCRAPER_PROXIES"
PROXY_MAX_PER_PROXY = 8
PROXY_COOLDOWN_BASE = 30.0
PROXY_COOLDOWN_MAX = 900.0
PROXY_BAN_HTTP_CODES = [403, 407]
PROXY_BAN_MARKERS: list[str] = []
PROXY_BAN_RETRY_TIMES = 5
PROXY_FALLBACK_DIRECT = False

# User-Agent rotation (scrapy-fake-useragent with our offline, pre-filtered provider).
FAKEUSERAGENT_PROVIDERS = ["scraper.useragents.BrowserUserAgentProvider"]
FAKEUSERAGENT_FALLBACK = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                          "Chrome/135.0.0.0 Safari/537.36")
USERAGENT_STICKY = "none"

RUN_REPORT_ENABLED = False  # True: _report/report.html beside the dataset (plots of the run)

DEADLETTER_ENABLED = True
DEADLETTER_URI = ""  # "" = `_deadletter/` beside the Parquet dataset

# Raw responses of requests with meta["raw_archive"] (the quotes API pages), for `python -m scraper.replay`.
RAW_ARCHIVE_ENABLED = True
RAW_ARCHIVE_URI = ""  # "" = `_raw/` beside the Parquet dataset

FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = "INFO"
