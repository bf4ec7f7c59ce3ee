"""Content-addressed storage (seed 002, §III.B): CIDs, a local block store, and the storage
latency model of eq. 1 with placement by it."""
