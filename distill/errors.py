"""The one exception family users see as a one-line error instead of a traceback."""


class DistillError(Exception):
    """A problem with the user's input or set-up (bad file, bad flag, missing key).

    The command-line entry points print ``distill <cmd>: error: <message>`` and exit 2;
    anything else is a bug and keeps its traceback.
    """


class ConfigError(DistillError, ValueError):
    """An invalid configuration value or combination; the message says what to change."""
