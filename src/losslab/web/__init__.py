"""The explorer's JSON API (Starlette). Formulas live only in Python: the page asks this API for
values, gradients and curves; no loss is re-implemented in JavaScript. See docs/web-api.md."""

from .app import create_app

__all__ = ["create_app"]
