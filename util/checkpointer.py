"""What a training run writes to keep its work: the resumable state and the network files.

The order of the files makes a run safe to kill at any moment (SIGKILL, a power cut).  The
resumable state (latest_state.pth) is self-contained and written atomically; the first save of a
run writes it BEFORE any network file, so a folder that holds network files always holds a state
too, and a run killed before its first state was complete has written nothing and starts again
from the beginning (util/training_state.find_resume_state).  Later saves write the network files
first, then the state: a kill in between leaves the previous state, which resumes exactly (the
newer network files beside it are written again by the resumed run).
"""
from util.errors import NonFiniteLossError
from util.runtime import get_rng_state
from util.training_state import save_training_state, state_path


class Checkpointer:
    """Saves one run's checkpoints; remembers where the last resumable state stands.

    `progress` is the run's util.training_state.Progress (read at each save); `epoch_rng` must be
    set to the RNG state captured before each epoch's loader was made (the loop does it).
    """

    def __init__(self, opt, model, dataset, ddp, progress, epoch_rng, saved_at=None):
        self.opt, self.model, self.dataset, self.ddp = opt, model, dataset, ddp
        self.progress = progress
        self.epoch_rng = epoch_rng
        self.saved_at = saved_at  # progress.describe() of the last resumable state written
        self.written = {}  # label -> progress.describe() when its network files were written
        self.path = state_path(opt)

    def save(self, *labels, names=None, state=True):
        """The resumable state (unless `state` is False), then `<label>_net_<Name>.pth` for each
        label (every network, or those in `names`); what was already written at this point of
        the run is not written again.

        Networks with NaN or infinite weights are never written over a good checkpoint.
        """
        bad = self.model.nonfinite_networks()
        if bad:
            raise NonFiniteLossError(f"net{bad[0]} holds NaN or infinite weights at epoch "
                                     f"{self.progress.epoch}, total_iters {self.progress.total_iters}; "
                                     f"nothing was saved, {self.last_good()}")
        here = self.progress.describe()
        state = state and self.saved_at != here
        if state and self.saved_at is None:  # the run's first state comes before any network
            self.save_state()
            state = False
        for label in labels:
            if names is None and self.written.get(label) == here:
                continue
            if self.ddp.is_main:  # the weights are the same on every rank
                self.model.save_networks(label, names)
            if names is None:
                self.written[label] = here
        if state:
            self.save_state()

    def save_state(self):
        """latest_state.pth: model, optimizers, progress and every rank's RNG states."""
        ranks = self.ddp.gather_rng_states(self.dataset.generator, self.epoch_rng)  # all ranks
        if self.ddp.is_main:
            save_training_state(self.path, self.model, self.progress, self.epoch_rng,
                                self.dataset.generator, self.opt, len(self.dataset),
                                distributed=ranks)
        self.saved_at = self.progress.describe()

    def new_epoch_rng(self):
        """Capture the RNGs as they are before this epoch's loader is made (for exact resume)."""
        self.epoch_rng = get_rng_state(self.dataset.generator)

    def last_good(self):
        """Where the last resumable checkpoint stands, for error messages."""
        if self.saved_at is None:
            return "and this run has not written a checkpoint yet"
        return f"the last good checkpoint is {self.path} ({self.saved_at})"
