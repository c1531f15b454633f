"""Argument types and the parser: a bad argument is one line naming the help to read."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn, TypeVar

from fsm.store.listing import MAX_PAGE

_Number = TypeVar("_Number", int, float)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose complaint is one line naming the help to read."""

    def error(self, message: str) -> NoReturn:
        """Exit 2 after one line saying what is wrong with the arguments."""
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def ranged(
    convert: Callable[[str], _Number], low: _Number, high: _Number, what: str
) -> Callable[[str], _Number]:
    """An argument type: a number ``convert`` reads, from ``low`` to ``high``."""

    def parse(text: str) -> _Number:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not low <= value <= high:  # also refuses a float NaN
            raise argparse.ArgumentTypeError(f"{text} is not {what} from {low:g} to {high:g}")
        return value

    return parse


def bounded_text(flag: str, limit: int) -> Callable[[str], str]:
    """An argument type: text of 1 to ``limit`` characters, not only blanks."""

    def parse(value: str) -> str:
        text = value.strip()
        if not text or len(text) > limit:
            raise argparse.ArgumentTypeError(f"{flag} must be 1 to {limit} characters")
        return text

    return parse


port_number = ranged(int, 0, 65535, "a port number")
"""A TCP port; 0 asks for any free one."""
page_size = ranged(int, 1, MAX_PAGE, "a whole number")
seconds = ranged(float, 0.001, 86400.0, "a number of seconds")
"""A duration: a grace, a lease or an interval, up to a day."""

__all__ = ["OneLineParser", "bounded_text", "page_size", "port_number", "ranged", "seconds"]
