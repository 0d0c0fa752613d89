"""Errors a user can act on. Commands print their message as one line, without a traceback; the message
names what is wrong (a setting, a database, a source and window) and never holds a secret."""


class GrowWowError(Exception):
    """Base of the errors that end a command with a one-line message and exit status 1."""


class SettingsError(GrowWowError):
    """A setting is missing or malformed."""


class DatabaseUnavailable(GrowWowError):
    """The configured database cannot be reached."""


class LoadError(GrowWowError, ValueError):
    """Rows that cannot go into a table as given (unknown column, missing key, naive timestamp)."""
