"""The room's Stop rule, for training runs and maps alike.

A run (or a map) that several sessions asked for stops only when every one of them has pressed
Stop or left: one student's Stop must not end what the lecturer and the room are watching. A
session that did not ask may not stop it while an asker is still there; `None` is the engine
itself (a sweep, a test), which always may.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class StopAnswer:
    """What a session's Stop does: stop the work, or only withdraw this session's request while
    others still want it; `reason` says which, in words, for the page."""

    stops: bool
    allowed: bool = True
    reason: str | None = None


def sessions_phrase(count: int, other: str = "") -> str:
    return f"1 {other}session" if count == 1 else f"{count} {other}sessions"


@dataclass
class Askers:
    """The sessions that asked for one run of something, and those of them that pressed Stop."""

    what: str = "run"  # "run" or "map": how the reasons name it
    asked: set[str] = field(default_factory=set)
    withdrawn: set[str] = field(default_factory=set)

    def add(self, session: str | None) -> None:
        """`session` asks (again): its earlier Stop no longer counts."""
        if session is not None:
            self.asked.add(session)
            self.withdrawn.discard(session)

    def restart(self) -> None:
        """A new run begins: earlier askers and their Stops are forgotten."""
        self.asked, self.withdrawn = set(), set()

    def includes(self, session: str | None) -> bool:
        return session is not None and session in self.asked

    def still_wants(self, session: str | None) -> bool:
        """`session` asked and has not pressed Stop since."""
        return self.includes(session) and session not in self.withdrawn

    def waiting(self, present: Callable[[str], bool], besides: str | None = None) -> list[str]:
        """Askers still present who have not pressed Stop (other than `besides`)."""
        return [other for other in self.asked - self.withdrawn - {besides} if present(other)]

    def stop(self, session: str | None, present: Callable[[str], bool], pressing: bool) -> StopAnswer:
        """What `session` pressing Stop does (with `pressing`, its Stop is counted)."""
        if session is None:
            return StopAnswer(stops=True)
        waiting = self.waiting(present, besides=session)
        if session not in self.asked and waiting:
            return StopAnswer(stops=False, allowed=False, reason=(
                f"Started by {sessions_phrase(len(waiting))}, who can stop it; press Train with the same "
                "settings to share this run, and your Stop will count too." if self.what == "run" else
                f"Asked for by {sessions_phrase(len(waiting))}, who can stop it."))
        if waiting:
            if pressing:
                self.withdrawn.add(session)
            many = len(waiting) > 1
            counted = " Your Stop is counted." if pressing or session in self.withdrawn else ""
            return StopAnswer(stops=False, reason=(
                f"{sessions_phrase(len(waiting), 'other ')} asked for this {self.what} too, so it keeps "
                f"{'training' if self.what == 'run' else 'computing'} until {'they press' if many else 'it presses'} "
                f"Stop or leave{'' if many else 's'}.{counted}"))
        return StopAnswer(stops=True)

    def present_copy(self, present: Callable[[str], bool]) -> "Askers":
        """The askers still present, and their Stops: what a snapshot carries to the web side,
        which decides its Stop buttons from it."""
        asked = {session for session in self.asked if present(session)}
        return Askers(self.what, asked, self.withdrawn & asked)

    def clear_stops(self) -> None:
        """The work was stopped: its Stops need not stop it again."""
        self.withdrawn = set()

    def abandoned(self, present: Callable[[str], bool]) -> bool:
        """Someone pressed Stop and every asker who did not has left: the last one closed the tab."""
        return bool(self.withdrawn) and not self.waiting(present)
