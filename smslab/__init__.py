"""smslab: scaling-law experiments for language models of symbolic music."""

__version__ = "0.1.0"
