"""pytest set-up for the HDL tests.

Helpers live next to the tests as plain modules (``streams.py``: Amaranth-simulation
stream helpers; ``cocotb_harness.py``: cocotb driver/monitor and the runner wrapper).
pytest runs with ``--import-mode=importlib``, which does not put test folders on
``sys.path``, so this conftest does it: ``tests/hdl`` (for ``import streams`` /
``import cocotb_harness``) and ``tests/hdl/cocotb`` (the cocotb test modules, which the
cocotb runner imports by name; it passes this process's ``sys.path`` as PYTHONPATH).

The cocotb test modules are not pytest tests: they run inside the simulator, started
by the pytest entries (``test_*_cocotb.py`` / ``test_pointwise.py``).
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _p in (_HERE, _HERE / "cocotb"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

collect_ignore_glob = ["cocotb/*"]
