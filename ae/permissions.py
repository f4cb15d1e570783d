"""Who may do what to a model: the one place the room's rules live.

The training service enforces them (a command that breaks one is refused with the sentence
below) and pages ask the same functions to disable a control and say why. Each returns None
when the visitor may, else the reason in words. Stop has its own rule (`ae.askers`), with the
lecturer as an override.

- The lecturer (and the engine) may do anything: stop any run, clear or reorder the queue,
  delete any model, pin and unpin.
- Nobody else continues, resumes, trains over or deletes a pinned model; they get their own
  copy instead (`own_copy`).
- A student continues, resumes and deletes only the models they asked for.
"""
from __future__ import annotations

from ae.roles import Visitor

LECTURER_ONLY = {
    "pin": "Only the lecturer may pin or unpin models.",
    "clear_queue": "Only the lecturer may clear the queue.",
    "run_next": "Only the lecturer may reorder the queue.",
}


def refuse_lecturer_only(action: str, visitor: Visitor) -> str | None:
    return None if visitor.lecturer else LECTURER_ONLY[action]


def refuse_change(pinned: bool, owners: frozenset[str] | set[str], visitor: Visitor) -> str | None:
    """Continue or Resume: the model trained so far is changed."""
    if visitor.lecturer:
        return None
    if pinned:
        return ("The lecturer pinned this model, so it stays as it is for everyone; "
                "Continue trains your own copy instead.")
    if visitor.session not in owners:
        return ("Another session trained this model, so only it or the lecturer may train it further; "
                "Continue trains your own copy instead.")
    return None


def refuse_retrain(pinned: bool, visitor: Visitor) -> str | None:
    """Train again over a failed or damaged model."""
    if visitor.lecturer or not pinned:
        return None
    return "The lecturer pinned this model; only the lecturer may train it again."


def refuse_delete(pinned: bool, owners: frozenset[str] | set[str], visitor: Visitor) -> str | None:
    if visitor.lecturer:
        return None
    if pinned:
        return "The lecturer pinned this model; only the lecturer may delete it."
    if visitor.session not in owners:
        return "You may delete only the models you trained; ask the lecturer to delete this one."
    return None
