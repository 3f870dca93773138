"""Policy: credentials, limits, proxies and CORS, over real sockets."""
