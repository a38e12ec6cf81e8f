"""convc: from a trained convnet to a bit-exact fixed-point FPGA accelerator."""
__version__ = "0.1.0"
