"""pytest set-up for the reference tests: ``tests/reference`` on ``sys.path`` so that tests
import their helpers as plain modules (``import onnx_graphs``); pytest runs with
``--import-mode=importlib``, which does not add test folders itself."""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
