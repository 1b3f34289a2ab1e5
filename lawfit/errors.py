"""The one error lawfit raises for bad input: the CLI prints it and exits with status 2."""


class LawfitInputError(ValueError):
    """Input that lawfit cannot use; the message names the input and what is wrong with it."""
