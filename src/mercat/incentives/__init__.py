"""Collective incentives (seed 000): calibration, ruin probability, the settlement rule."""
