"""The drivers' error hierarchy; messages name the device path and what to check."""


class DeviceError(Exception):
    """A device is missing, unreadable or misconfigured."""


class ConfigError(DeviceError):
    """A `[[device]]` table or the `[codes]` table is invalid; the message names index and field."""


class DeviceGone(DeviceError):
    """An open device vanished (unplugged, powered off); the driver reconnects with backoff."""


class PrinterError(DeviceError):
    """A printer refused a job or could not be reached; the job stays in the reprint queue."""


class SpoolError(DeviceError):
    """The reprint queue is full or its directory is unusable."""


class ReceiptError(DeviceError):
    """A receipt handed to the printer driver is malformed or over a limit; nothing was spooled."""
