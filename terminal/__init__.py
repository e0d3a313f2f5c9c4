"""The posterm daemon and its CLI: wiring, state, persistence, sync, local API."""
