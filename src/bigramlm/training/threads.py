"""CPU thread policy for every command that runs a model: train, eval, sample, assist, serve, learn.

Torch starts with one intra-op thread per core, and every kernel then pays an OpenMP
fork/join; when another process holds a core, each join waits for the scheduler.
Measured on the shared 2-core machine:

* tiny models: a bigram step is microseconds of work. With the other core busy, 170
  steps/s with 2 threads against 2,000 with 1; on a quiet machine the two are even
  (~2,500). One thread never loses below ``TINY_MODEL_PARAMETERS`` (far above any
  bigram table: 112 characters of Bitext make 12,500 parameters).
* the GPT on a quiet machine wants every core: the 0.8 M-parameter recipe took 1.6x
  the steps per second with 2 threads as with 1 (326 vs 205 steps in 21 s).
* the same GPT on a busy machine: a fixed 2 threads made a tiny run 6x slower (113 s
  against 19 s on 1 thread), and sampling 300 tokens took 6-15 s against 0.08 s.

So the count is decided by measuring, not fixed: tiny models get 1 thread, and others
get the cores that are idle now, at least 1 and at most torch's start-up count. "Now"
is the kernel's CPU counters (``/proc/stat``) over ``BUSY_WINDOW_S`` while this process
waits, so only other jobs count as busy (``busy_cores``, injectable as ``load``). The
1-minute load average, used before, also counts this process's own past work:
``train --recipe support`` embeds the messages on both cores for 105 s before it builds
the GPT, which left the load at 1.25, and the GPT got one thread and 200 steps in its
20-minute budget instead of 439. The load average remains the fallback where
``/proc/stat`` is missing. A busy core costs far more
(6x) than an idle one left unused (1.6x), so the idle share is rounded down unless it
is within ``IDLE_SLACK`` of the next whole core.
"""

from __future__ import annotations

import math
import os
import time

import torch
import torch.nn as nn

from bigramlm.errors import BigramLMError

#: The thread count torch chose at start-up (one per core unless OMP_NUM_THREADS says).
DEFAULT_THREADS = torch.get_num_threads()
#: Below this many parameters a model's kernels are too small to gain from threads.
TINY_MODEL_PARAMETERS = 100_000
#: Load that still leaves a core counted as idle: the load average includes this
#: process's own start-up and the usual background noise (0.05-0.3 here).
IDLE_SLACK = 0.3


def machine_load() -> float | None:
    """Runnable processes averaged over the last minute, or None where the OS does not say."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


#: How long ``busy_cores`` watches the CPU counters: long enough for a few scheduler
#: ticks (4 ms each), short enough not to be felt at a command's start.
BUSY_WINDOW_S = 0.2


def _cpu_counters() -> tuple[float, float]:
    """(idle, total) jiffies of all CPUs since boot, from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return idle, sum(fields[:8])


def busy_cores(window: float = BUSY_WINDOW_S) -> float | None:
    """Cores kept busy by other processes right now: the CPU counters over ``window``
    seconds while this process sleeps. None where the OS does not say."""
    try:
        idle0, total0 = _cpu_counters()
        time.sleep(window)
        idle1, total1 = _cpu_counters()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    busy_share = 1.0 - (idle1 - idle0) / (total1 - total0)
    return max(0.0, busy_share * (os.cpu_count() or 1))


def usable_cores(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """The cores this process may run on: its CPU affinity, cut to its cgroup's CPU quota
    (a container limited to 2 CPUs on a 64-core host must not start 64 threads)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    return max(1, min(cores, math.floor(quota))) if quota is not None else cores


def cgroup_cpu_quota(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs the cgroup may use (``cpu.max`` of cgroup v2, ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us`` of v1), or None where there is no quota."""
    try:
        quota, period = open(os.path.join(root, "cpu.max")).read().split()[:2]  # "max 100000" or "200000 100000"
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(open(os.path.join(root, "cpu", "cpu.cfs_quota_us")).read())
        period_us = int(open(os.path.join(root, "cpu", "cpu.cfs_period_us")).read())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def choose_threads(parameters: int, load: float | None = None, cores: int | None = None, ceiling: int | None = None) -> int:
    """The policy: 1 thread for a tiny model, else the idle cores (see the module docstring).

    ``load`` is how many cores other jobs keep busy (``busy_cores()`` when None, then the
    load average; unknown means a quiet machine), ``cores`` the cores this process may
    use, ``ceiling`` the most threads to use (torch's start-up count by default).
    """
    if parameters < TINY_MODEL_PARAMETERS:
        return 1
    ceiling = DEFAULT_THREADS if ceiling is None else ceiling
    cores = usable_cores() if cores is None else cores
    if load is None:
        load = busy_cores()
    if load is None:  # no /proc/stat
        load = machine_load()
    idle = cores - (load or 0.0)
    return max(1, min(ceiling, math.floor(idle + IDLE_SLACK)))


def configure_threads(
    model: nn.Module | None,
    threads: int | None = None,
    device: str | torch.device = "cpu",
    load: float | None = None,
) -> int:
    """Set torch's intra-op threads for running ``model``; returns the count in effect.

    ``threads`` overrides the policy (``choose_threads``); None applies it. Every
    command calls this once its model is loaded. Idempotent and set per call, not
    restored, so a bigram then a GPT in one notebook each get their count. Other
    devices than the CPU are left alone.
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise BigramLMError(f"threads must be a whole number of at least 1 (got {threads!r})", param="threads")
    if torch.device(device).type != "cpu":
        return torch.get_num_threads()
    if threads is None:
        if model is None:
            raise BigramLMError("configure_threads needs the model, or threads", param="threads")
        threads = choose_threads(sum(p.numel() for p in model.parameters()), load=load)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def configure_cpu_threads(model: nn.Module, device: str | torch.device = "cpu") -> int:
    """The policy for ``model`` (``configure_threads`` without an override); kept for callers of earlier versions."""
    return configure_threads(model, None, device)
