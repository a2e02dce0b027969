"""A job's next state: one pure function of its state and an event.

    queued --Started--> running --Succeeded--> done
                          |  Failed / Hung / Vanished(counted)
                          |     attempts left and input not bad --> queued (backoff + jitter)
                          |     otherwise                        --> failed
                          |  StoppedByUs / Vanished(not counted) --> queued (attempt given back)
                          |  NoSpace  --> queued (attempt given back, backoff, reason kept)
    failed --Retry--> queued (fresh attempts)

`attempt` counts the attempts started and charged so far; a stop by us, or a loss that is not
the job's fault (a reboot, a server crash before it ran), gives the attempt back. So does a
full disk (NoSpace): an environmental condition, retried with backoff however often it happens.
"""

from __future__ import annotations

import dataclasses
import enum

NO_SPACE_REASON = "no space left on device"


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class Started:
    pass


@dataclasses.dataclass(frozen=True)
class Succeeded:
    pass


@dataclasses.dataclass(frozen=True)
class Failed:
    reason: str
    bad_input: bool = False  # the input can never work (exit 65): no retry


@dataclasses.dataclass(frozen=True)
class Hung:
    stalled_seconds: float


@dataclasses.dataclass(frozen=True)
class Vanished:
    """The process is gone without a status file. `counted`: it may have been the job's fault
    (False after a reboot or when it never started: not the job's fault)."""

    counted: bool
    reason: str = "vanished: the process is gone and left no status"


@dataclasses.dataclass(frozen=True)
class StoppedByUs:
    pass


@dataclasses.dataclass(frozen=True)
class NoSpace:
    """The job failed because the disk was full: not the input's fault, so never charged."""

    reason: str = NO_SPACE_REASON


@dataclasses.dataclass(frozen=True)
class Retry:
    pass


Event = Started | Succeeded | Failed | Hung | Vanished | StoppedByUs | NoSpace | Retry


@dataclasses.dataclass(frozen=True)
class Job:
    state: JobState
    attempt: int
    max_attempts: int
    not_before: float = 0.0
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class Backoff:
    base_seconds: float
    max_seconds: float

    def delay(self, attempt: int, jitter: float) -> float:
        """Delay before attempt `attempt + 1`: base * 2**(attempt-1), capped, then scaled by a
        jitter factor in [0.5, 1] (`jitter` in [0, 1])."""
        raw = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return raw * (0.5 + 0.5 * min(1.0, max(0.0, jitter)))


class InvalidTransition(Exception):
    def __init__(self, job: Job, event: Event) -> None:
        super().__init__(f"no transition from {job.state.value} on {type(event).__name__}")
        self.job = job
        self.event = event


def hung_reason(stalled_seconds: float) -> str:
    return f"hung: no progress for {stalled_seconds:.0f} s"


def next_state(job: Job, event: Event, *, now: float, backoff: Backoff, jitter: float) -> Job:
    """The job after `event`. Raises InvalidTransition for an event that cannot happen."""
    match job.state, event:
        case JobState.QUEUED, Started() if job.attempt < job.max_attempts:
            return dataclasses.replace(job, state=JobState.RUNNING, attempt=job.attempt + 1)
        case JobState.RUNNING, Succeeded():
            return dataclasses.replace(job, state=JobState.DONE, reason=None)
        case JobState.RUNNING, Failed(reason=reason, bad_input=bad):
            return _charge(job, reason, bad, now=now, backoff=backoff, jitter=jitter)
        case JobState.RUNNING, Hung(stalled_seconds=s):
            return _charge(job, hung_reason(s), False, now=now, backoff=backoff, jitter=jitter)
        case JobState.RUNNING, Vanished(counted=True, reason=reason):
            return _charge(job, reason, False, now=now, backoff=backoff, jitter=jitter)
        case JobState.RUNNING, Vanished(counted=False) | StoppedByUs():
            return dataclasses.replace(
                job, state=JobState.QUEUED, attempt=max(0, job.attempt - 1), not_before=now
            )
        case JobState.RUNNING, NoSpace(reason=reason):
            attempt = max(0, job.attempt - 1)
            return dataclasses.replace(
                job,
                state=JobState.QUEUED,
                attempt=attempt,
                not_before=now + backoff.delay(max(1, attempt), jitter),
                reason=reason,
            )
        case JobState.FAILED, Retry():
            return dataclasses.replace(
                job, state=JobState.QUEUED, attempt=0, not_before=now, reason=None
            )
    raise InvalidTransition(job, event)


def _charge(
    job: Job, reason: str, bad_input: bool, *, now: float, backoff: Backoff, jitter: float
) -> Job:
    if bad_input or job.attempt >= job.max_attempts:
        return dataclasses.replace(job, state=JobState.FAILED, reason=reason)
    return dataclasses.replace(
        job,
        state=JobState.QUEUED,
        not_before=now + backoff.delay(job.attempt, jitter),
        reason=reason,
    )


def media_reason(step: str, job: Job, *, bad_input: bool = False) -> str:
    """What a person reads on a failed media: 'thumb: exited 1: boom (attempt 3 of 3)'."""
    if bad_input:
        return f"{step}: {job.reason} (bad input, not retried)"
    return f"{step}: {job.reason} (attempt {job.attempt} of {job.max_attempts})"
