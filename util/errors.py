"""User-facing errors.

Anything the user can fix (a missing folder, an unreadable image, an impossible option) raises
`UserError`.  The entry scripts catch it and print one line, `error: <message>`, then exit with
status 2 -- no traceback.  Library code never calls `sys.exit` itself.
"""
import sys


class UserError(Exception):
    """A problem with the user's input or files, explained in one line."""


def run_cli(main):
    """Call `main()`; turn a UserError into a one-line message and exit status 2."""
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
