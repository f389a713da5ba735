"""The service's Prometheus metrics, one registry per app.

A registry per `create_app` (not the global default) keeps two apps in one
process — the tests run several — from sharing or double-registering counters.
Cache figures are read from the cache stores at scrape time, so the caching
layer needs no knowledge of Prometheus.

Under `serve --processes N` (`PROMETHEUS_MULTIPROC_DIR` set by the supervisor,
see `web/processes.py`) counters and histograms live in files shared by the
processes, and `render` sums them over all of them: a scrape reaching any
process sees the service's totals. Scrape-time collectors (the cache gauges)
are the answering process's own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from symbolicator.caching import Caches

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        shared_dir = os.environ.get(MULTIPROC_ENV)
        self._scraped = r
        if shared_dir:
            self._scraped = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._scraped, shared_dir)  # type: ignore[no-untyped-call]
        self.process_requests = Gauge(
            "symbolicator_process_http_requests", "HTTP requests answered by this process (per pid under "
            "serve --processes)", registry=r, multiprocess_mode="all",
        )
        self.requests = Counter(
            "symbolicator_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "symbolicator_http_request_duration_seconds", "Time to answer an HTTP request", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.chunks_received = Counter("symbolicator_chunks_received", "Upload chunks stored", registry=r)
        self.chunk_bytes_received = Counter(
            "symbolicator_chunk_bytes_received", "Uncompressed bytes of upload chunks stored", registry=r
        )
        self.bytes_stored = Counter(
            "symbolicator_storage_bytes_stored", "Bytes written to storage", ["kind"], registry=r
        )
        self.uploads = Counter(
            "symbolicator_uploads", "Assembled uploads by kind and final state", ["kind", "state"], registry=r
        )
        self.phase_seconds = Counter(
            "symbolicator_upload_phase_seconds", "Time spent in each upload phase", ["phase"], registry=r
        )
        self.phase_bytes = Counter(
            "symbolicator_upload_phase_bytes", "Bytes handled by each upload phase", ["phase"], registry=r
        )
        self.native_conversions = Counter(
            "symbolicator_native_conversions", "Debug files converted to symcaches", registry=r
        )
        self.cfi_conversions = Counter(
            "symbolicator_cfi_conversions", "Debug files and executables converted to CFI caches", registry=r
        )
        self.js_conversions = Counter(
            "symbolicator_js_conversions", "Source maps converted to sourcemap caches", registry=r
        )
        self.jvm_conversions = Counter(
            "symbolicator_jvm_conversions", "ProGuard mappings converted to ProGuard caches", registry=r
        )
        self.native_downloads = Counter(
            "symbolicator_native_downloads", "Debug files downloaded for native lookups", registry=r
        )
        self.shared_cache = Counter(
            "symbolicator_shared_cache", "Shared-cache lookups and uploads by outcome (hit, miss, damaged, "
            "error, published, publish_failed)", ["event"], registry=r,
        )
        self.assembling = Gauge("symbolicator_uploads_assembling", "Assembles in progress", registry=r)

    def observe_phase(self, phase: str, seconds: float, size: int) -> None:
        self.phase_seconds.labels(phase).inc(seconds)
        self.phase_bytes.labels(phase).inc(size)

    def shared_cache_event(self, event: str) -> None:
        self.shared_cache.labels(event).inc()

    def add_collector(self, collect: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
        """Register a function producing gauges at scrape time (cache sizes, …)."""

        class _Adapter(Collector):
            def collect(self) -> Iterable[GaugeMetricFamily]:
                return collect()

        self.registry.register(_Adapter())
        if self._scraped is not self.registry:
            self._scraped.register(_Adapter())

    def render(self) -> bytes:
        return generate_latest(self._scraped)


def cache_gauges(caches: Caches) -> Iterable[GaugeMetricFamily]:
    """Hits, misses, entries and bytes of each on-disk cache, read at scrape time."""
    families = {
        name: GaugeMetricFamily(f"symbolicator_cache_{name}", doc, labels=["cache"])
        for name, doc in (("hits", "Cache hits since start"), ("misses", "Cache misses since start"),
                          ("entries", "Entries in the cache"), ("bytes", "Bytes in the cache"),
                          ("max_bytes", "Size limit of the cache"))
    }
    for store in caches.stores():
        stats = store.stats()
        for name, family in families.items():
            family.add_metric([store.name], float(stats.get(name, 0)))
    return list(families.values())
