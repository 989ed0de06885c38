"""Argument types shared by every `vpump` subcommand, so a number out of range reads the same
everywhere ("argument --seed: got -1, must be a whole number from 0 to 4294967295")."""

import argparse


def whole_number(lo, hi, unit=""):
    """An argparse type: a whole number from lo to hi (argparse puts "argument --x: " in front)."""
    unit = " " + unit if unit else ""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(
                "got %s, must be a whole number%s from %d to %d" % (text, unit, lo, hi))
        return value
    return parse


# A run's, a link's or a fuzzer's seed: any 32-bit unsigned number.
seed = whole_number(0, 2 ** 32 - 1)
