"""The app's typed state: one ``web.AppKey`` per thing the handlers use, and the URL helpers.

``app.py`` sets the keys (the fixed ones when it builds the app, the backends and what uses
them in its cleanup contexts, at start-up); the route modules read them. Nothing here imports a
route module, so there is no cycle between them.
"""

from __future__ import annotations

from aiohttp import web

from ..apikeys import KeyRing
from ..backends.base import Backends
from ..backends.local_storage import LocalStorage
from ..catalogue import Catalogue
from ..coordinator import Coordinator
from ..live import Hub
from ..logs import RequestIds
from ..metrics import Metrics
from ..recent import Recent
from ..request import ImageRequest
from ..settings import Settings
from ..uploads import Uploads
from .bundle import Asset, Bundle

# Set when the app is built.
SETTINGS = web.AppKey("settings", Settings)
CATALOGUE = web.AppKey("catalogue", Catalogue)
KEYS = web.AppKey("keys", KeyRing)
METRICS = web.AppKey("metrics", Metrics)
HUB = web.AppKey("hub", Hub)
BUNDLE = web.AppKey("client", Bundle)
IDS = web.AppKey("request_ids", RequestIds)  # ids for requests that bring none (logs.py)
DOCS = web.AppKey("docs", Bundle)  # the API reference page (/docs)
OPENAPI = web.AppKey("openapi", Asset)  # /openapi.json, generated once the routes are added
# parsed /graph requests by (spec, raw query, Accept): parsing depends on nothing else
PARSED = web.AppKey("parsed", Recent[tuple[str, str, str], ImageRequest])

# Set at start-up, by the cleanup contexts.
BACKENDS = web.AppKey("backends", Backends)
COORDINATOR = web.AppKey("coordinator", Coordinator)
UPLOADS = web.AppKey("uploads", Uploads)
LOCAL_STORAGE = web.AppKey("local_storage", LocalStorage)  # the embedded storage only


def base_url(request: web.Request) -> str:
    """The origin result URLs are built on: IMGSERVER_PUBLIC_URL, else the request's own."""
    return request.app[SETTINGS].public_url or f"{request.scheme}://{request.host}"


def url_for(request: web.Request, path: str) -> str:
    """The public URL of the stored object at ``path``."""
    return request.app[BACKENDS].storage.url(path, base_url(request))
