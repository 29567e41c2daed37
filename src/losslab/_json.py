"""JSON out of losslab (the command line's --json, the explorer's API): standard JSON only.

JSON has no inf or NaN; Python's json would write them as bare ``Infinity``/``NaN``, which strict
parsers refuse. ``dumps`` sends them as the strings "inf", "-inf" and "nan" instead, so a reader sees
them plainly, and turns NumPy scalars into numbers.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def finite(value: Any) -> Any:
    """``value`` with every non-finite float as a string and NumPy scalars as Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


def dumps(value: Any, *, compact: bool = False) -> str:
    """Standard JSON: indented for people (the command line), compact for machines (the server)."""
    return json.dumps(finite(value), allow_nan=False, **({"separators": (",", ":")} if compact else {"indent": 2}))
