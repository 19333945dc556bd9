"""Jet-ntuple generation: Pythia 8 processes, a tower calorimeter, FastJet jets and per-jet variables."""
