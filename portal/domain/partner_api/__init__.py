"""The partner API (/api/v1) for an MSP's own scripts and PSA sync: what a key may
do (keys.py), pages of each resource by a cursor (cursor.py, reads.py). Writes go
through the same domain functions as the pages, with the key's actor."""
