"""Errors a user can act on, reported as one sentence instead of a traceback."""


class UserError(Exception):
    """A problem with the machine or the config that the user must fix (missing tool, bad checksum)."""


class Unsupported(Exception):
    """A cell this build's tool cannot run (a flag its llama.cpp version lacks): recorded as skipped, with why."""
