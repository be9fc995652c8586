"""Background work: thin task functions over the domain, run by arq workers on
Redis, or in-process when no REDIS_URL is set."""
