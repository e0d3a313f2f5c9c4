"""The central HTTP service (aiohttp), assembled: the terminals' protocol (central/api.py, with
batch ingest in central/ingest.py), the admin API for integrations (central/admin_api.py), the
staff's web console (central/web/), `/metrics`, and the scheduled expiry sweep; storage is
central/store.py with its SQLite and PostgreSQL backends.

Storage calls run in bounded thread pools (one thread for SQLite, the single writer; for
PostgreSQL two for ingest and four for reads).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from central import api, expiry
from central import web as web_console
from central.admin_api import add_admin_api
from central.metrics import CentralMetrics
from central.service import INGEST_POOL_KEY, OBSERVERS, POOL_KEY, STORE_KEY, run
from central.store import Store
from protocol import wire

# PostgreSQL: reads (keys, updates pages, card lookups) in their own pool, so a swipe never
# queues behind ingests. Ingests share card rows across terminals and the GIL: past two threads
# they only wait on each other's row locks (measured: 2 → 20k events/s, 4 → 18k, 8 → 17.5k).
PG_READ_WORKERS = 4
PG_INGEST_WORKERS = 2


def _add_metrics(app: web.Application, store: Store) -> None:
    """`GET /metrics` (unauthenticated, like /v1/health: counts, no card data) and the counting."""
    found = CentralMetrics(store.terminals)
    app.middlewares.append(found.middleware)
    OBSERVERS.append(found.observe)

    async def metrics(request: web.Request) -> web.Response:
        # The terminals gauge reads the database: off the event loop, like every store call.
        response: web.Response = await run(request, found.exposition)
        return response

    async def forget(app: web.Application) -> None:
        OBSERVERS.remove(found.observe)

    app.router.add_get("/metrics", metrics)
    app.on_cleanup.append(forget)


def make_app(store: Store, expire_every_s: float | None = None) -> web.Application:
    """The service; with `expire_every_s`, the server's expiry sweep runs on that schedule."""
    app = web.Application(client_max_size=wire.BATCH_BYTES_MAX, middlewares=[api.signed_not_found])
    app[STORE_KEY] = store
    if store.name == "sqlite":  # one connection, the single writer: one thread does it all
        app[POOL_KEY] = app[INGEST_POOL_KEY] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
    else:
        app[POOL_KEY] = ThreadPoolExecutor(max_workers=PG_READ_WORKERS, thread_name_prefix="store-read")
        app[INGEST_POOL_KEY] = ThreadPoolExecutor(max_workers=PG_INGEST_WORKERS, thread_name_prefix="store-ingest")
    api.add_routes(app)  # the terminals' protocol (central/api.py)
    _add_metrics(app, store)
    add_admin_api(app, store, app[POOL_KEY])  # /admin/v1/: JSON for integrations, bearer tokens
    web_console.setup(app)  # the staff's web console (central/web/)
    if expire_every_s is not None:
        app.cleanup_ctx.append(expiry.scheduled(store, app[INGEST_POOL_KEY], expire_every_s))

    async def shutdown(app: web.Application) -> None:
        app[INGEST_POOL_KEY].shutdown(wait=True)
        app[POOL_KEY].shutdown(wait=True)
        store.close()

    app.on_cleanup.append(shutdown)
    return app
