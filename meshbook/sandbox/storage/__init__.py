"""Storage: the objects themselves (in memory, written through to SQLite), the served resource types
that key them, the one resourceVersion counter and the watch window. Imports nothing above it."""
