"""Typed application state: what handlers may reach through `request.app[…]`.

`SERVICES` is the composition root (`service/services.py`), opened in the app's cleanup context;
handlers reach everything that lives as long as the service through it. `SETTINGS`, `METRICS`
and `AUTH` exist before start-up (middlewares and the server read them); `STORAGE`, `CACHES`
and `UPLOADS` are parts of `SERVICES`, kept under their own keys for the health and upload
handlers.
"""

from __future__ import annotations

from aiohttp import web

from symbolicator.caching import Caches
from symbolicator.config import Settings
from symbolicator.metrics import Metrics
from symbolicator.service.services import Services
from symbolicator.service.uploads import UploadService
from symbolicator.storage.base import Storage
from symbolicator.web.auth import Authenticator

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
AUTH = web.AppKey("auth", Authenticator)
SERVICES = web.AppKey("services", Services)
STORAGE = web.AppKey("storage", Storage)
UPLOADS = web.AppKey("uploads", UploadService)
CACHES = web.AppKey("caches", Caches)
