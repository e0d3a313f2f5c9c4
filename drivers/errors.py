"""The drivers' error hierarchy; messages name the device path and what to check."""


class DeviceError(Exception):
    """A device is missing, unreadable or misconfigured."""
