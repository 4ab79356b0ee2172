"""Online resharding: add a shard, move buckets to it under load, and back (docs/resharding.md).

plan.py decides which buckets move and in what order (pure, unit-tested); record.py keeps the
move and the shard set in etcd and flips the map in one transaction; fencing.py is the SQL on
the shards (fence states, copy, change replay, verification, clean-up); mover.py runs a move
step by step, resumably; view.py shows it live and writes its report.
"""
