"""JSON files read as the daemon's Go decoder reads them, with one-line errors.

Python's json module accepts NaN and Infinity (Go refuses them), recurses without a
bound and refuses integers over 4300 digits with a message that names no file; the
toolkit's metadata and checkpoint readers go through here instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (a number must be finite)")


def load(path: Path, error: type[Exception] = ValueError) -> Any:
    """The JSON value in path. Raises FileNotFoundError when there is no such file (the
    caller says what was expected there) and error(f"{path}: <problem>") for anything
    else: not a regular file (a FIFO would block), unreadable, not UTF-8, malformed,
    nested too deeply, NaN or Infinity, a number too long to convert."""
    if path.exists() and not path.is_file():
        raise error(f"{path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read ({e})") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise error(f"{path}: malformed JSON (nested too deeply)") from None
    except json.JSONDecodeError as e:
        raise error(f"{path}: malformed JSON ({e})") from None
    except ValueError as e:  # NaN/Infinity, or an integer past Python's digit limit
        raise error(f"{path}: malformed JSON ({str(e).splitlines()[0]})") from None
