"""What the commands read from their command line."""

from __future__ import annotations

import argparse


def text(value: str) -> str:
    """An argument as text. Bytes that aren't UTF-8 reach Python as lone surrogates, which no
    database takes: refused as the command line's own error (the value not repeated)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError("is not UTF-8 text") from None
    return value
