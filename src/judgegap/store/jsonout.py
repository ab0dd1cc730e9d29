"""Standard JSON for files other tools read (summary.json, results.jsonl, ``--json`` output).

Python's json writes NaN and Infinity, which are not JSON: jq, JavaScript and most
parsers reject the whole file. Undefined numbers (an accuracy over zero accepted
answers, a threshold of +inf meaning "accept nothing") are written as null instead;
the surrounding fields (n, escalation rate, ...) say why.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_null(obj: Any) -> Any:
    """A copy of ``obj`` with every NaN / +-inf float replaced by None (dicts, lists, tuples)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:  # numpy scalar
        return finite_or_null(obj.item())
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` that always produces standard JSON (non-finite numbers -> null)."""
    kwargs.setdefault("default", str)
    return json.dumps(finite_or_null(obj), allow_nan=False, **kwargs)
