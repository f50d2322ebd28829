"""CPU thread policy for training and evaluation.

A bigram step is a handful of kernels on a (32, 8, 65) tensor: microseconds of work.
With torch's default of one intra-op thread per core, every kernel pays an OpenMP
fork/join, and on a shared 2-core machine a busy sibling core turns each join into a
wait for the scheduler. Measured with the other core busy: 170 steps/s with 2
threads against 2,000 steps/s with 1; on a quiet machine the two are even (~2,500),
so one thread never loses. Anything bigger wants every core: on a quiet 2-core machine the
0.8 M-parameter GPT recipe takes 1.6x the steps per second with 2 threads as with 1
(326 vs 205 steps in 21 s), so the cut-off sits far below it, above any bigram table
(V x V, about 12,500 parameters for the 112 characters of Bitext).
"""

from __future__ import annotations

import torch
import torch.nn as nn

#: The thread count torch chose at start-up (one per core unless OMP_NUM_THREADS says).
DEFAULT_THREADS = torch.get_num_threads()
#: Below this many parameters a model's kernels are too small to gain from threads.
TINY_MODEL_PARAMETERS = 100_000


def configure_cpu_threads(model: nn.Module, device: str | torch.device = "cpu") -> int:
    """Use one intra-op thread for a tiny model on CPU, the start-up default otherwise.

    Idempotent and set per call (not restored), so training a bigram and then a GPT in
    one notebook gives each the right count. Returns the count now in effect.
    """
    if torch.device(device).type != "cpu":
        return torch.get_num_threads()
    parameters = sum(p.numel() for p in model.parameters())
    wanted = 1 if parameters < TINY_MODEL_PARAMETERS else DEFAULT_THREADS
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return wanted
