"""cocotb testbenches, simulator runners, cycle models and reports."""
