"""Exceptions and warnings raised by nidecode.

Every exception nidecode raises on purpose derives from :class:`NidecodeError`;
the command line prints any of them as one line and exits with status 2::

    NidecodeError
    +-- InputError (also a ValueError)   bad input the user can fix
    |   +-- ParameterError               a parameter out of its range
    |   +-- StoreError                   a store unreadable, or changed after ingest
    |   +-- OutputDirError               an output directory that cannot be used
    +-- ClusterError                     no scheduler answered, workers died

A store or an output directory is input the user gives (and can fix), so
``except InputError`` catches their errors too; a dead scheduler is not.
"""

from __future__ import annotations


class NidecodeError(Exception):
    """Base class of the errors nidecode raises: a one-line message the user can act on."""


class InputError(NidecodeError, ValueError):
    """Bad input: a file, a store or an argument the user can fix.

    The message is one line that names the file or argument, says what is
    wrong and what to do. The command line prints it and exits with status 2.
    """


class ParameterError(InputError):
    """A parameter value out of its range, worded by parameter name (scikit-learn style).

    ``str(error)`` speaks of the API parameter; the command line rewords it
    with the option's flag (:func:`nidecode.cli.main`).

    Parameters
    ----------
    function : str
        The public function whose parameter it is (``"decode"``).
    parameter : str
        The parameter name (``"C"``).
    value : object
        The value given.
    rule : str
        What the value must be (``"a positive finite float"``).
    hint : str, optional
        What to do, appended to the message.
    """

    def __init__(self, function: str, parameter: str, value, rule: str, hint: str = ""):
        self.function, self.parameter, self.value = function, parameter, value
        self.rule, self.hint = rule, hint
        super().__init__(f"The {parameter!r} parameter of {function} must be {rule}. "
                         f"Got {value!r} instead." + (f" {hint}" if hint else ""))


class StoreError(InputError):
    """A store that cannot be read, or whose data changed after ingest."""


class OutputDirError(InputError):
    """An output directory that cannot be used (other parameters, foreign files, ...)."""


class ClusterError(NidecodeError):
    """A cluster problem: no scheduler answered, or workers died."""


class NidecodeWarning(UserWarning):
    """Something the user should know before a run (slow settings, capped resources).

    The command line prints it as one line, ``nidecode: warning: ...``.
    """


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none).

    Messages of other libraries quoted inside ours stay on one line.
    """
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
