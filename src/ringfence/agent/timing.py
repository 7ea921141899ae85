"""When to poll next: a jittered interval while all is well, exponential backoff with jitter while it is not.

Jitter spreads a fleet's polls so that a million agents restarted at once
(a data-centre power cut, a mass reboot) do not poll in lock-step; backoff
keeps a struggling server from being hammered by every agent at full rate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Pacer"]


@dataclass
class Pacer:
    """Computes the next wait; ``failures`` counts consecutive failed polls."""

    interval: float
    jitter: float = 0.2
    cap: float = 900.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def success(self) -> float:
        """Reset the backoff; the next wait is the interval scaled by 1 ± jitter."""
        self.failures = 0
        return min(self.cap, self.interval * self.rng.uniform(1 - self.jitter, 1 + self.jitter))

    def failure(self) -> float:
        """One more failure; wait a random time between half and all of ``interval × 2^failures`` (capped)."""
        self.failures += 1
        ceiling = min(self.cap, self.interval * 2.0 ** min(self.failures, 30))
        return self.rng.uniform(ceiling / 2, ceiling)
