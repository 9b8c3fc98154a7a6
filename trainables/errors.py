"""The one exception type for mistakes a user can fix (bad flag, missing file, bad config)."""


class UserError(Exception):
    """A user's mistake, reported as one line on stderr with exit code 2 and no traceback.

    The message should say what was wrong, where, and what would be accepted, e.g.
    ``--data /x: no such folder (give a folder of .png/.jpg images)``. CLIs catch it in
    ``main`` and print ``error: <message>``; library code raises it only for input that
    came from a person (flags, files, config values), never for programming errors.
    """
