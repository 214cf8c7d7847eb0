"""The proxy: an aiohttp server that forwards each request to an account of one cluster."""
