"""Binarizers, quantizers, bit layouts and the weight bitstream.

This package imports nothing else of bnnforge. Its NumPy-only modules (``bits``, ``layout``,
``thresholds``, ``bitstream``, ``errors``) are what ``hw`` may import; ``binarize`` needs torch
and is imported only by training code.
"""
