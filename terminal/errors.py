"""The terminal's error hierarchy; messages name the file, device, row or setting at fault."""


class TerminalError(Exception):
    """Base of the terminal's refusals; the CLI prints the message and exits with code 2."""


class InputFileError(TerminalError):
    """A file handed to the CLI is missing, too large or not what it should be."""
