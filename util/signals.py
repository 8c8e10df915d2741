"""Stop requests from the outside world: a cluster pre-empting the job (SIGTERM), Ctrl-C (SIGINT).

Killing a training process mid-step loses everything since the last save, and killing it during
a save used to risk the checkpoint itself.  Inside `StopSignals`, the first SIGTERM or SIGINT only
records the request; the training loop checks `requested` after each iteration, saves a
resumable checkpoint and exits.  A second Ctrl-C stops at once (KeyboardInterrupt), for a user
who really means it.
"""
import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Context manager: while active, SIGTERM/SIGINT set `requested` (the signal number)."""

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = signals
        self.requested = None
        self._previous = {}

    @property
    def name(self):
        return signal.Signals(self.requested).name if self.requested else None

    def _handle(self, signum, frame):
        if self.requested == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C
        self.requested = self.requested or signum

    def __enter__(self):
        # Python only lets the main thread install handlers (a run started from another thread,
        # e.g. by a notebook helper, simply keeps the default behaviour).
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return False
