"""An ArgumentParser that knows its own argv and reports errors in one line."""
import argparse
import sys


class OptionParser(argparse.ArgumentParser):
    """ArgumentParser with two changes.

    * `parse_known_args()` without arguments parses the argv this parser was made for, not
      `sys.argv`, so model option setters that peek at the command line (CUT reads --CUT_mode
      to choose its defaults) also work for programmatic command lines.
    * Errors print a single line naming the option, then exit with status 2.
    """

    def __init__(self, argv, **kwargs):
        super().__init__(formatter_class=argparse.ArgumentDefaultsHelpFormatter, **kwargs)
        self.argv = list(argv)

    def parse_known_args(self, args=None, namespace=None):
        return super().parse_known_args(self.argv if args is None else args, namespace)

    def error(self, message):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)
