"""The guided tour (`make tour`): every concept of the system-design article, run live on the
lab and measured, one step at a time. Steps are in registry.py; docs/tour.md is written from
them (docs.py)."""
