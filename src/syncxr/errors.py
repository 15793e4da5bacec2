"""User-facing errors. The CLI turns a UserError into one clear message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: say what was wrong, where, what was expected and how to fix it."""
