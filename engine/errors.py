"""Exceptions raised by nidecode for problems the user can fix."""


class InputError(ValueError):
    """Bad input: a file, a store or an argument the user can fix.

    The message is one line that names the file or argument, says what is
    wrong and what to do. The command line prints it and exits with status 2.
    """
