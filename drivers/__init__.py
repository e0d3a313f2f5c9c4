"""Device drivers: bytes and input events in, domain events out; receipts out as printer bytes."""
