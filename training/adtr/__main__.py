import os
import sys

if os.environ.get("PYTHONHASHSEED") != "0":
    # Reproducible training needs fixed string hashing from the interpreter's start
    # (see adtr/__init__.py), so run again with it.
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, "-m", "adtr", *sys.argv[1:]])

from .cli import main  # noqa: E402

sys.exit(main())
