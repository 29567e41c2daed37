"""The explorer: a Starlette app serving one offline page and the JSON API it uses. Formulas live
only in Python: the page asks the API for values, gradients and curves; no loss is re-implemented
in JavaScript. ``losslab explore`` runs it (see docs/explorer.md and docs/web-api.md)."""

from .app import create_app
from .server import bind, serve

__all__ = ["bind", "create_app", "serve"]
