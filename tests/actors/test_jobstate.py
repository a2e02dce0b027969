"""The job state machine, exhaustively: every (state, event) pair, and random histories."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gremlin.actors.jobstate import (
    Backoff,
    Failed,
    Hung,
    InvalidTransition,
    Job,
    JobState,
    NoSpace,
    Retry,
    Started,
    StoppedByUs,
    Succeeded,
    Vanished,
    media_reason,
    next_state,
)

BACKOFF = Backoff(base_seconds=5.0, max_seconds=60.0)
EVENTS = [
    Started(),
    Succeeded(),
    Failed("exited 1: boom"),
    Failed("bad input: not an image", bad_input=True),
    Hung(60),
    Vanished(counted=True),
    Vanished(counted=False),
    StoppedByUs(),
    NoSpace(),
    Retry(),
]
ALLOWED = {
    (JobState.QUEUED, Started),
    (JobState.RUNNING, Succeeded),
    (JobState.RUNNING, Failed),
    (JobState.RUNNING, Hung),
    (JobState.RUNNING, Vanished),
    (JobState.RUNNING, StoppedByUs),
    (JobState.RUNNING, NoSpace),
    (JobState.FAILED, Retry),
}


def step(job: Job, event: object, now: float = 100.0, jitter: float = 0.5) -> Job:
    return next_state(job, event, now=now, backoff=BACKOFF, jitter=jitter)  # type: ignore[arg-type]


@pytest.mark.parametrize(("state", "event"), list(itertools.product(JobState, EVENTS)), ids=repr)
def test_every_state_and_event(state: JobState, event: object) -> None:
    job = Job(state, attempt=1 if state is not JobState.QUEUED else 0, max_attempts=3)
    if (state, type(event)) not in ALLOWED:
        with pytest.raises(InvalidTransition):
            step(job, event)
        return
    after = step(job, event)
    match event:
        case Started():
            assert (after.state, after.attempt) == (JobState.RUNNING, 1)
        case Succeeded():
            assert (after.state, after.reason) == (JobState.DONE, None)
        case Failed(bad_input=True):
            assert (after.state, after.attempt) == (JobState.FAILED, 1)
        case Failed() | Hung() | Vanished(counted=True):
            assert (after.state, after.attempt) == (JobState.QUEUED, 1)
            assert 100 + 2.5 <= after.not_before <= 100 + 5
        case Vanished(counted=False) | StoppedByUs():
            assert (after.state, after.attempt, after.not_before) == (JobState.QUEUED, 0, 100)
        case NoSpace():
            assert (after.state, after.attempt) == (JobState.QUEUED, 0)
            assert after.reason == "no space left on device"
            assert 100 + 2.5 <= after.not_before <= 100 + 5
        case Retry():
            assert (after.state, after.attempt, after.reason) == (JobState.QUEUED, 0, None)


def test_a_full_disk_never_fails_a_job_however_often_it_happens() -> None:
    job = Job(JobState.QUEUED, attempt=0, max_attempts=2)
    for i in range(50):
        job = step(step(job, Started(), now=i), NoSpace(), now=i)
        assert (job.state, job.attempt) == (JobState.QUEUED, 0)
        assert job.reason == "no space left on device"
        assert i + 2.5 <= job.not_before <= i + 5  # backoff, not a hot loop
    # On its last attempt too: the attempt is given back, the job does not fail.
    job = step(step(step(job, Started()), Failed("exited 1: x")), Started(), now=1000)
    assert job.attempt == 2
    after = step(job, NoSpace(), now=1000)
    assert (after.state, after.attempt) == (JobState.QUEUED, 1)


def test_last_attempt_fails_with_the_reason_a_person_reads() -> None:
    job = Job(JobState.RUNNING, attempt=3, max_attempts=3)
    after = step(job, Failed("exited 1: cannot decode"))
    assert (after.state, after.reason) == (JobState.FAILED, "exited 1: cannot decode")
    assert media_reason("thumb", after) == "thumb: exited 1: cannot decode (attempt 3 of 3)"
    hung = step(job, Hung(61.4))
    assert hung.reason == "hung: no progress for 61 s"


def test_no_start_beyond_max_attempts() -> None:
    with pytest.raises(InvalidTransition):
        step(Job(JobState.QUEUED, attempt=3, max_attempts=3), Started())


@given(attempt=st.integers(1, 40), jitter=st.floats(0, 1))
def test_backoff_doubles_is_capped_and_jittered(attempt: int, jitter: float) -> None:
    delay = BACKOFF.delay(attempt, jitter)
    full = min(60.0, 5.0 * 2 ** (attempt - 1))
    assert full / 2 <= delay <= full
    assert BACKOFF.delay(attempt + 1, jitter) >= delay


class JobMachine(RuleBasedStateMachine):
    """Random histories against a tiny model: attempts charged, terminal states, backoff."""

    def __init__(self) -> None:
        super().__init__()
        self.job = Job(JobState.QUEUED, attempt=0, max_attempts=3)
        self.now = 0.0
        self.charged = 0  # attempts charged to the job since the last Retry

    def apply(self, event: object, jitter: float = 0.5) -> Job | None:
        before = self.job
        try:
            self.job = step(before, event, now=self.now, jitter=jitter)
        except InvalidTransition:
            assert (before.state, type(event)) not in ALLOWED or (
                isinstance(event, Started) and before.attempt >= before.max_attempts
            )
            assert self.job == before
            return None
        return before

    @rule(dt=st.floats(0, 1000))
    def time_passes(self, dt: float) -> None:
        self.now += dt

    @rule()
    def start(self) -> None:
        if self.apply(Started()) is not None:
            self.charged += 1

    @rule()
    def succeed(self) -> None:
        self.apply(Succeeded())

    @rule(bad=st.booleans(), jitter=st.floats(0, 1))
    def fail(self, bad: bool, jitter: float) -> None:
        before = self.apply(Failed("exited 1: x", bad_input=bad), jitter)
        if before is not None:
            if bad or before.attempt == before.max_attempts:
                assert self.job.state is JobState.FAILED
            else:
                assert self.job.state is JobState.QUEUED
                assert self.job.not_before >= self.now + 2.5

    @rule(counted=st.booleans())
    def vanish(self, counted: bool) -> None:
        if self.apply(Vanished(counted=counted)) is not None and not counted:
            self.charged -= 1

    @rule(jitter=st.floats(0, 1))
    def disk_full(self, jitter: float) -> None:
        if self.apply(NoSpace(), jitter) is not None:
            self.charged -= 1
            assert self.job.state is JobState.QUEUED
            assert self.job.reason == "no space left on device"
            assert self.job.not_before >= self.now + 2.5

    @rule()
    def stop(self) -> None:
        if self.apply(StoppedByUs()) is not None:
            self.charged -= 1

    @precondition(lambda self: self.job.state is JobState.FAILED)
    @rule()
    def retry(self) -> None:
        self.apply(Retry())
        self.charged = 0

    @invariant()
    def attempts_are_counted(self) -> None:
        assert 0 <= self.job.attempt <= self.job.max_attempts
        assert self.job.attempt == self.charged

    @invariant()
    def states_have_their_facts(self) -> None:
        if self.job.state is JobState.DONE:
            assert self.job.reason is None and self.job.attempt >= 1
        if self.job.state is JobState.FAILED:
            assert self.job.reason


TestJobMachine = JobMachine.TestCase
TestJobMachine.settings = settings(max_examples=80, stateful_step_count=25, deadline=None)


def test_job_is_immutable() -> None:
    job = Job(JobState.QUEUED, 0, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.attempt = 1  # type: ignore[misc]
