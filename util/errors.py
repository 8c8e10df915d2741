"""User-facing errors.

Anything the user can fix (a missing folder, an unreadable image, an impossible option) raises
`UserError`.  The entry scripts catch it and print one line, `error: <message>`, then exit with
the error's status (2 unless it says otherwise) -- no traceback.  Library code never calls
`sys.exit` itself.
"""
import sys


class UserError(Exception):
    """A problem with the user's input or files, explained in one line."""

    exit_code = 2


class NonFiniteLossError(UserError):
    """Training produced a NaN or infinite loss (or weights); the run stops before saving them."""

    exit_code = 3

    def __init__(self, message, name=None, value=None):
        super().__init__(message)
        self.name = name
        self.value = value


def first_line(err, default=None):
    """The first non-empty line of an exception's message (library errors can run to pages),
    or `default` (the exception's type name unless given) when it has none."""
    text = str(err).strip()
    if text:
        return text.splitlines()[0]
    return type(err).__name__ if default is None else default


def run_cli(main):
    """Call `main()`; exit with the status it returns if that is a non-zero int (anything else
    means success); turn a UserError into a one-line message and its exit status."""
    try:
        status = main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    if isinstance(status, int) and not isinstance(status, bool) and status != 0:
        sys.exit(status)
