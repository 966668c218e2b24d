"""Scale-out on Redis: a shared request frontier with leases, a shared dupefilter, and a scheduler
(a scrapy-redis subclass) that switches on when ``REDIS_URL`` is set. See README "Scale-out on Redis"."""
