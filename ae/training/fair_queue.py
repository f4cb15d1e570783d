"""The order in which queued jobs reach a slot: the lecturer first, then students in turn.

The lecturer's requests (and the engine's: warm-up, a test) go first, in the order asked.
Students' requests are served round-robin by session (start-time fair queueing): each entry
gets a turn number, its session's next free turn but never earlier than the turn being served
now, so a student who queues 16 sizes waits behind nobody and holds up nobody: a second
student's one job goes after the first student's current one, not after all 16. The queue
also knows each session's jobs, queued or running, for the per-session cap.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class Owner:
    """Who queued a job: a session (None: the engine) and whether it is the lecturer."""

    session: str | None
    lecturer: bool

    @property
    def first_class(self) -> bool:
        return self.lecturer or self.session is None


@dataclass
class _Entry:
    job: object
    owner: Owner
    turn: int
    sequence: int

    def rank(self) -> tuple:
        return (0, self.sequence) if self.owner.first_class else (1, self.turn, self.sequence)


class FairQueue:
    """Queued jobs with their owners, and the running jobs' owners. Not thread-safe: the
    trainer holds its lock around every call."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._running: dict[object, Owner] = {}
        self._next_turn: dict[str, int] = {}  # a student session's next free turn
        self._serving = 0  # the turn of the last student job started
        self._sequence = itertools.count()

    def __contains__(self, job) -> bool:
        return any(entry.job is job for entry in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, job, owner: Owner) -> None:
        if job in self:
            return
        turn = 0
        if not owner.first_class:
            turn = max(self._next_turn.get(owner.session, 0), self._serving)
            self._next_turn[owner.session] = turn + 1
        self._entries.append(_Entry(job, owner, turn, next(self._sequence)))
        self._entries.sort(key=_Entry.rank)

    def remove(self, job) -> None:
        self._entries = [entry for entry in self._entries if entry.job is not job]

    def next_ready(self, busy: set) -> int | None:
        """The place (from 0) of the first job whose key is not in `busy` (its previous run
        still ending in a slot), or None."""
        return next((index for index, entry in enumerate(self._entries) if entry.job.key not in busy), None)

    def pop(self, index: int = 0):
        """The job at `index` (the next by default), to run; it counts as its owner's running
        job until `finished`."""
        entry = self._entries.pop(index)
        if not entry.owner.first_class:
            self._serving = max(self._serving, entry.turn)
        self._running[entry.job] = entry.owner
        return entry.job

    def finished(self, job) -> None:
        self._running.pop(job, None)
        self._forget_idle_sessions()

    def move_to_front(self, job) -> None:
        """The lecturer's reorder: the job runs next, as if the lecturer had asked for it."""
        for entry in self._entries:
            if entry.job is job:
                entry.owner = Owner(entry.owner.session, lecturer=True)
                entry.sequence = -next(self._sequence) - 1  # before every first-class entry
        self._entries.sort(key=_Entry.rank)

    def clear(self) -> list:
        """Empty the queue (the lecturer's Clear); returns the jobs taken out."""
        jobs = [entry.job for entry in self._entries]
        self._entries = []
        self._forget_idle_sessions()
        return jobs

    def jobs(self) -> list:
        return [entry.job for entry in self._entries]

    def positions(self) -> dict:
        """job -> place in line, from 1."""
        return {entry.job: place for place, entry in enumerate(self._entries, start=1)}

    def held_by(self, session: str) -> int:
        """The session's jobs queued or running: what the per-session cap counts."""
        queued = sum(1 for entry in self._entries if entry.owner.session == session)
        return queued + sum(1 for owner in self._running.values() if owner.session == session)

    def ahead_of_next(self, session: str) -> int:
        """Jobs that would run before a new request of this student session."""
        probe = Owner(session, lecturer=False)
        turn = max(self._next_turn.get(session, 0), self._serving)
        rank = _Entry(None, probe, turn, 1 << 62).rank()
        return sum(1 for entry in self._entries if entry.rank() < rank)

    def _forget_idle_sessions(self) -> None:
        """Bounded: only sessions with a job queued keep their turn counter."""
        queued = {entry.owner.session for entry in self._entries}
        self._next_turn = {session: turn for session, turn in self._next_turn.items() if session in queued}
