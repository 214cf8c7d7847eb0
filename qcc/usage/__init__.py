"""Money and usage: the price table, cost arithmetic, and the SQLite usage store."""
