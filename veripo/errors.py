"""Errors a user can act on. The CLI prints their message on one line (no traceback) and exits 2."""


class VeripoError(Exception):
    """Base class: the message names the file / row / setting at fault and what to do."""


class VideoError(VeripoError):
    """A video is missing, empty, corrupt or cannot be decoded (the message names the file)."""


class DataError(VeripoError):
    """A data row or data file is malformed (the message names file:line and why)."""


class JudgeError(VeripoError):
    """The judge endpoint failed after all retries (dead, timing out, or answering garbage)."""


class PathError(VeripoError, FileNotFoundError):
    """A file or folder the user named (config, data, checkpoint) does not exist; the message names it."""


class ConfigError(VeripoError, ValueError):
    """A config file, override or setting is invalid; the message names the key, its value and the fix."""
