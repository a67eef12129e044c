"""Cluster access through the official kubernetes client: clients, server-side apply, waits, snapshots."""
