"""bnnforge: generate, simulate and measure FPGA hardware for binary neural networks."""

__version__ = "0.1.0"
