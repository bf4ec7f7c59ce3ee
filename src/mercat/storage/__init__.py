"""Content-addressed storage (seed 002, §III.B): CIDs and UnixFS files as IPFS writes them, a
local block store and an IPFS daemon as stores, content encrypted with its key sealed to a
provider, replication, and the storage latency model of eq. 1 with placement by it."""
