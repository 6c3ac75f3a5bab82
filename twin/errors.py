"""Errors a user can cause: the CLI prints them as one line and exits with code 2."""


class TwinInputError(Exception):
    """Bad input the user controls (file, YAML key, value, position...).

    The message is a single line that names the offending input.
    """
