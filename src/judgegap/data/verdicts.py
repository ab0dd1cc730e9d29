"""Verdicts produced elsewhere (another tool, an API judge, a paper's released outputs).

Accepted files: a JSON list or JSON Lines of objects with an id (``id``, ``idx`` or
``pair_id``) and a verdict (``verdict``, or any key ending in ``_result`` such as
PandaLM's ``gpt_result`` / ``pandalm_result``). Verdict values are normalised to
``"A"`` / ``"B"`` / ``"tie"``; anything else is *unparseable* and counted, never dropped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from judgegap.data.io import read_records
from judgegap.errors import DataError

_A = {"1", "a", "a>b", "response 1", "response a", "output 1", "output (a)", "[[a]]"}
_B = {"2", "b", "b>a", "response 2", "response b", "output 2", "output (b)", "[[b]]"}
_TIE = {"0", "tie", "draw", "equal", "a=b", "[[c]]", "both", "same"}


def normalise_verdict(value: Any) -> str | None:
    """'A', 'B', 'tie', or None for an unparseable value (e.g. PandaLM's 'garbage')."""
    if isinstance(value, bool) or value is None:
        return None
    s = re.sub(r"\s+", " ", str(value)).strip().strip(".").lower()
    if s in _A:
        return "A"
    if s in _B:
        return "B"
    if s in _TIE:
        return "tie"
    return None


def _id_key(rec: dict[str, Any]) -> str | None:
    return next((k for k in ("id", "idx", "pair_id") if k in rec), None)


def _verdict_key(rec: dict[str, Any]) -> str | None:
    if "verdict" in rec:
        return "verdict"
    return next((k for k in rec if k.endswith("_result")), None)


def load_verdicts(path: Path) -> dict[str, Any]:
    """{id: raw verdict value} from a saved-verdict file (one clear error line if unusable)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"verdict file not found: {path}")
    recs = read_records(path)
    if not recs:
        raise DataError(f"{path}: contains no verdicts")
    out: dict[str, Any] = {}
    for i, r in enumerate(recs):
        if not isinstance(r, dict):
            raise DataError(f"{path}: record {i} is not a JSON object")
        ik, vk = _id_key(r), _verdict_key(r)
        if ik is None or vk is None:
            raise DataError(f"{path}: record {i} needs an id (id/idx/pair_id) and a verdict (verdict or *_result)")
        out[str(r[ik])] = r[vk]
    return out
