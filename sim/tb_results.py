"""The files between the cocotb accelerator testbench (:mod:`convc.sim.accel_tb`, run
inside the simulator) and its runner (:mod:`convc.sim.cocotb_run`, in convc's process):
the configuration's environment variable and the results ``.npz``. Kept apart from the
testbench so that the runner does not import cocotb.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["CONFIG_ENV", "save_results", "load_results"]

CONFIG_ENV = "CONVC_ACCEL_TB"   # the testbench's JSON configuration (see convc.sim.accel_tb)


def save_results(path, layers: list[list[np.ndarray]], cycles, records, status, info: dict) -> None:
    """Write the results ``.npz`` atomically (temp file in the same folder + rename).

    ``layers[i]`` is the list (one per image) of layer ``i``'s raw words."""
    path = Path(path)
    arrays = {}
    for i, per_image in enumerate(layers):
        arrays[f"layer{i}"] = (np.stack(per_image).astype(np.uint16) if per_image
                               else np.zeros((0, 0), dtype=np.uint16))
    arrays["cycles"] = np.asarray(cycles, dtype=np.int64).reshape(-1)
    arrays["records"] = np.asarray(records, dtype=np.int64).reshape(-1)
    arrays["status"] = np.asarray(status, dtype=np.int64).reshape(-1)
    arrays["info"] = np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def load_results(path, n_layers: int) -> dict:
    """Read a results file: ``{"layers": [(n, words) uint16 ...], "cycles", "records",
    "status", "info"}``."""
    with np.load(path, allow_pickle=False) as z:
        info = json.loads(bytes(z["info"]).decode()) if "info" in z.files else {}
        return {"layers": [z[f"layer{i}"] for i in range(n_layers)], "cycles": z["cycles"],
                "records": z["records"], "status": z["status"], "info": info}
