"""Results store: SQLite cache of model calls (resume), runs and records."""

from judgegap.store.sqlite import Store, call_key, canonical_json

__all__ = ["Store", "call_key", "canonical_json"]
