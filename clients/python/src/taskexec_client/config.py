"""Client settings: arguments first, then `TASKEXEC_URL` / `TASKEXEC_API_KEY`."""

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "TASKEXEC_URL"
API_KEY_ENV = "TASKEXEC_API_KEY"
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def resolve_url(base_url: str | None, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (base_url or env.get(URL_ENV) or DEFAULT_URL).rstrip("/")


def resolve_api_key(api_key: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    return api_key or env.get(API_KEY_ENV) or None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a request the server could not serve right now.

    `attempts` counts every try (1 = no retry). Between tries the client sleeps a random
    ("full jitter") time up to `backoff * 2**(try - 1)`, capped at `backoff_max`, or what the
    server's `Retry-After` asks for, if that is longer (plus up to 10 % jitter). A `Retry-After`
    over `backoff_max` is not waited for: the error is raised.
    """

    attempts: int = 5
    backoff: float = 0.5
    backoff_max: float = 30.0
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def delay(self, failures: int, retry_after: float | None = None) -> float | None:
        """Seconds to sleep after the `failures`-th failed try, or None to give up."""
        if failures >= self.attempts:
            return None
        ceiling = min(self.backoff_max, self.backoff * 2 ** (failures - 1))
        jittered = self.rng.uniform(0, ceiling)
        if retry_after is None:
            return jittered
        if retry_after > self.backoff_max:
            return None
        return max(jittered, retry_after * self.rng.uniform(1.0, 1.1))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header given in seconds (an HTTP date is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(seconds, 0.0)
