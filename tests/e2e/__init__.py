"""End-to-end tests: the real daemon process on simulated devices, driven through its API."""
