"""Typed application state: what handlers may reach through `request.app[…]`."""

from __future__ import annotations

from aiohttp import web

from symbolicator.artifacts.indexes import IndexReader
from symbolicator.caching import Caches, Coalescer
from symbolicator.config import Settings
from symbolicator.fetch import Fetcher
from symbolicator.metrics import Metrics
from symbolicator.service.jobs import JobRegistry
from symbolicator.service.uploads import UploadService
from symbolicator.service.workers import WorkerPool
from symbolicator.storage.base import Storage
from symbolicator.web.auth import Authenticator

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
AUTH = web.AppKey("auth", Authenticator)
STORAGE = web.AppKey("storage", Storage)
INDEXES = web.AppKey("indexes", IndexReader)
UPLOADS = web.AppKey("uploads", UploadService)
CACHES = web.AppKey("caches", Caches)
JOBS = web.AppKey("jobs", JobRegistry)
WORKERS = web.AppKey("workers", WorkerPool)
COALESCER = web.AppKey("coalescer", Coalescer)
FETCHER = web.AppKey("fetcher", Fetcher)
