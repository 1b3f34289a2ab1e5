"""The one error lawfit raises for bad input: the CLI prints it and exits with status 2."""


class LawfitInputError(ValueError):
    """Input that lawfit cannot use; the message names the input and what is wrong with it."""

    exit_status = 2  # the command line's status for it (see smslab/cli.py)
