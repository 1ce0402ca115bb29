"""One exception type for problems the user can fix (bad paths, configs, clips, keys).

The CLI prints its message as one line and exits with code 2; anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """A problem in the user's input or environment, reported as one line."""

    exit_code = 2
