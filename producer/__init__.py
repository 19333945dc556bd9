"""The producer stage: read ROOT jet ntuples with uproot and replay them over ZeroMQ at a chosen rate;
generate holds the Pythia 8 sample generator that makes those ntuples."""
