"""How many maps may wait or compute: per browser session, and in all (issue 20).

One UMAP or t-SNE keeps a core busy for seconds to minutes, and its request carries up to
10,000 codes; an unbounded queue let one visitor (or a room pressing Compute) fill the map
process's memory and keep everyone waiting. So a session may have started `per_session` maps
that are still queued or computing, and the queue holds `in_all` at most. Asking for a map
already queued or running shares it and counts again for nobody. The engine's own maps
(session None: a benchmark, a test) have no session to cap, but count in all and meet the same
total bound. The web side checks both (a session lives in one web process); the map process
checks the total again across every web process attached to it (`ae.serve`).
"""
from __future__ import annotations

from dataclasses import dataclass

PER_SESSION_VARIABLE = "AE_MAPS_PER_SESSION"
IN_ALL_VARIABLE = "AE_MAPS_TOTAL"
PER_SESSION = 2
IN_ALL = 8


class MapRefused(RuntimeError):
    """A map was not queued; the message says why, in one sentence for the page."""


def maps_phrase(count: int) -> str:
    return "1 map" if count == 1 else f"{count} maps"


@dataclass(frozen=True)
class MapBounds:
    per_session: int = PER_SESSION
    in_all: int = IN_ALL

    @classmethod
    def from_environment(cls) -> "MapBounds":
        from ae.runtime import env_setting  # the same rule as every other setting

        return cls(env_setting(PER_SESSION_VARIABLE) or PER_SESSION, env_setting(IN_ALL_VARIABLE) or IN_ALL)

    def queue_full(self, ahead: int) -> str | None:
        """Why a new map may not join a queue of `ahead` maps, or None if it may."""
        if ahead < self.in_all:
            return None
        return f"The map queue is full ({maps_phrase(ahead)} ahead); try again in a minute."

    def refusal(self, session: str | None, started_by_session: int, ahead: int) -> str | None:
        """Why `session` may not start a new map, or None if it may."""
        if session is not None and started_by_session >= self.per_session:
            return (f"You already have {maps_phrase(started_by_session)} queued or computing, the most one session "
                    "may have; wait for one to finish or stop it.")
        return self.queue_full(ahead)
