"""ImagePool: a history of generated images for the discriminators.

Shrivastava et al. 2017 ("Learning from Simulated and Unsupervised Images through Adversarial
Training", section 2.3) update the discriminator with a buffer of earlier generator outputs
instead of only the latest ones, so that D does not forget what G produced a few steps ago and
the two networks oscillate less.  CycleGAN (Zhu et al. 2017, section 4) uses a buffer of 50.

Behaviour, per image of the batch, as the original CycleGAN code:
  * pool_size 0: the batch passes through unchanged;
  * while fewer than pool_size images are stored: store the image and return it;
  * once full: with probability 1/2 return a random stored image and store the new one in its
    place, otherwise return the new image.
Draws come from Python's global `random` (uniform(0, 1), then randint for the slot), the same
calls in the same order as the original, so seeded runs make the same choices.  That stream is
part of the resumable checkpoint's RNG state (util/runtime.get_rng_state), and so is the pool
itself (`state_dict` below), so --continue_train resumes a CycleGAN run exactly.
"""
import random

import torch


class ImagePool:
    """A buffer of at most `pool_size` generated images (each 1 x C x H x W, detached)."""

    def __init__(self, pool_size):
        if pool_size < 0:
            raise ValueError(f"pool_size must be 0 or more (got {pool_size})")
        self.pool_size = pool_size
        self.images = []

    def __len__(self):
        return len(self.images)

    def query(self, images):
        """Return a batch (B x C x H x W) of as many images as `images`, mixing in stored ones.

        The returned images are detached: D is trained on them, G never receives their gradient.
        """
        if self.pool_size == 0:
            return images
        returned = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                returned.append(image)
            elif random.uniform(0, 1) > 0.5:
                slot = random.randint(0, self.pool_size - 1)
                returned.append(self.images[slot])
                self.images[slot] = image
            else:
                returned.append(image)
        return torch.cat(returned, dim=0)

    # ---------------------------------------------------------------- resumable state
    def state_dict(self):
        """The stored images as CPU tensors (a list: sizes may differ between batches)."""
        return {"pool_size": self.pool_size, "images": [image.cpu() for image in self.images]}

    def load_state_dict(self, state, device="cpu"):
        """Restore `state_dict()`'s images onto `device`; a smaller pool keeps the first ones."""
        self.images = [image.to(device) for image in state["images"][:self.pool_size]]
