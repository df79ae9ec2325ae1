"""Routers of the platform API, one per area, all mounted under /api/v1."""
