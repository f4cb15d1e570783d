"""What the web side and the training service say to each other: commands and messages.

Every backend (today's local training process, a cluster backend tomorrow) speaks these. A
command names one job by its key, and the browser session it comes from (`web:session`, unique
across web processes): the service keeps who asked for each run (`ae.askers`), so the room's
Stop rule holds across every web process. The service answers each `Call` with a `Reply`
carrying the snapshots that changed, and otherwise publishes `Update`s about once a second. Plain frozen
dataclasses: picklable, with field names, dispatched by type (`ae.ipc.dispatcher`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ae.training.snapshot import JobSnapshot


# ---- commands: web side -> training service -------------------------------------------------
@dataclass(frozen=True)
class Request:
    """Train this config (a dict from `TrainingConfig.to_dict`), or share its run or model."""

    config: dict
    session: str | None = None
    lecturer: bool = False
    pin: bool = False  # the lecturer's warm-up: the model is pinned as it is asked for


@dataclass(frozen=True)
class Stop:
    """`session` presses Stop (None: the engine itself); the reply's result is a StopAnswer."""

    key: str
    session: str | None = None
    lecturer: bool = False  # the lecturer's Stop stops any run


@dataclass(frozen=True)
class Extend:
    """Queue `epochs` more epochs on the model trained so far (Continue +N)."""

    key: str
    epochs: int
    session: str | None = None
    lecturer: bool = False


@dataclass(frozen=True)
class Resume:
    """Train on until the model has `total_epochs` in all (the planned run after a stop)."""

    key: str
    total_epochs: float
    session: str | None = None
    lecturer: bool = False


@dataclass(frozen=True)
class Delete:
    key: str
    session: str | None = None
    lecturer: bool = False


@dataclass(frozen=True)
class Pin:
    """The lecturer pins (or unpins) a model: nobody else may change or delete it."""

    key: str
    pinned: bool
    session: str | None = None
    lecturer: bool = False


@dataclass(frozen=True)
class ClearQueue:
    """The lecturer empties the queue; the reply's result is how many jobs were taken out."""

    session: str | None = None
    lecturer: bool = False


@dataclass(frozen=True)
class RunNext:
    """The lecturer moves a queued job to the front."""

    key: str
    session: str | None = None
    lecturer: bool = False


@dataclass(frozen=True)
class Room:
    """What a session may still queue: the reply's result is a `RoomLeft`."""

    session: str | None = None
    lecturer: bool = False


@dataclass(frozen=True)
class RoomLeft:
    """How many more jobs the session may queue (None: no cap), and how many jobs are ahead of
    its next one."""

    jobs: int | None
    ahead: int
    cap: int | None


@dataclass(frozen=True)
class Departed:
    """These sessions closed their tabs: their requests no longer hold a run. The reply's result
    lists the runs that stopped because of it (every asker left after one pressed Stop)."""

    sessions: tuple[str, ...]


Command = Union[Request, Stop, Extend, Resume, Delete, Departed, Pin, ClearQueue, RunNext, Room]


@dataclass(frozen=True)
class Call:
    """A command with the number its `Reply` will carry; 0: posted, nobody waits for the reply."""

    call_id: int
    command: Command


# ---- messages: training service -> web side ----------------------------------------------------
@dataclass(frozen=True)
class Heartbeat:
    """Every second, from a thread of its own: the service is alive and not stopped. A web side
    that hears nothing for `HUNG_AFTER_SECONDS` declares it hung (`ae.jobs.backend`)."""


HEARTBEAT_SECONDS = 1.0
HUNG_AFTER_SECONDS = 15.0  # the service never compiles (its slots do): silence this long is a hang, not work


@dataclass(frozen=True)
class Hello:
    """Once, when the service starts: every job it knows."""

    pid: int
    snapshots: list[JobSnapshot]


@dataclass(frozen=True)
class Update:
    """Jobs that changed (panel arrays only when new), and the last snapshots of jobs removed."""

    snapshots: list[JobSnapshot]
    forgotten: list[JobSnapshot]


@dataclass(frozen=True)
class Reply:
    """The answer to one `Call`: None or the refusal in words, what changed meanwhile, and the
    command's result where it has one."""

    call_id: int
    error: str | None
    snapshots: list[JobSnapshot]
    forgotten: list[JobSnapshot]
    result: object = None


@dataclass(frozen=True)
class Weights:
    """A model the disk refused, kept in the web side's memory instead."""

    key: str
    saved_at: float
    weights: list


# ---- the training service and its slots (ae.training.slots, ae.training.worker) --------------
@dataclass(frozen=True)
class RunOrder:
    """Train one job's run in a slot: its config and where the service's record of it stands."""

    config: dict
    history: dict
    saved_at: float | None
    saved_to_disk: bool
    resume_from: float | None


@dataclass(frozen=True)
class StopRun:
    key: str


@dataclass(frozen=True)
class Progress:
    """The job as it stands in the slot (its panel only when new); `urgent`: publish at once."""

    snapshot: JobSnapshot
    urgent: bool
    where: str


@dataclass(frozen=True)
class RunEnded:
    key: str
