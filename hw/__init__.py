"""Amaranth 0.5 generators of binary neural network hardware.

Imports ``quant`` for bit layouts; never torch or cocotb.
"""
