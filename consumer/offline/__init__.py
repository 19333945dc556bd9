"""Offline tools on recordings and samples: verify, decode, plots, the three studies and the report."""
