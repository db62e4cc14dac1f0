"""JSON files read as the daemon's Go decoder reads them, with one-line errors.

Python's json module accepts NaN and Infinity (Go refuses them), recurses without a
bound and refuses integers over 4300 digits with a message that names no file; the
toolkit's metadata and checkpoint readers go through here instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (a number must be finite)")


def _float(text: str) -> float:
    v = float(text)
    if math.isinf(v):  # 1e400: Go's decoder says "out of range"; Python made it inf
        raise ValueError(f"{text[:40]} is out of a float64's range")
    return v


def _int(text: str) -> int:
    # Go reads whole numbers as 64-bit; longer ones also make float() overflow later.
    if len(text.lstrip("-")) > 19 or not -(2**63) <= int(text) < 2**63:
        raise ValueError(f"{text[:40]}{'...' if len(text) > 40 else ''} is out of a 64-bit integer's range")
    return int(text)


def load(path: Path, error: type[Exception] = ValueError) -> Any:
    """The JSON value in path. Raises FileNotFoundError when there is no such file (the
    caller says what was expected there) and error(f"{path}: <problem>") for anything
    else: not a regular file (a FIFO would block), unreadable, not UTF-8, malformed,
    nested too deeply, NaN or Infinity, a number out of float64 or int64 range."""
    if path.exists() and not path.is_file():
        raise error(f"{path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read ({e})") from None
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise error(f"{path}: malformed JSON (nested too deeply)") from None
    except json.JSONDecodeError as e:
        raise error(f"{path}: malformed JSON ({e})") from None
    except ValueError as e:  # NaN/Infinity, or an integer past Python's digit limit
        raise error(f"{path}: malformed JSON ({str(e).splitlines()[0]})") from None
