"""Each formula once: the definitions every engine evaluates (see docs/architecture.md)."""
