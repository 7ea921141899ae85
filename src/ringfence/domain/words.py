"""Rollout, wave and gate states in words, shared by the dashboard and the CLI (one rule, one place).

The engine's state names are identifiers (``waiting_window``); people read the words.  Each word comes with
a tone for the dashboard's colours, which are never the only cue: the word is always shown.
"""

from __future__ import annotations

__all__ = ["STATE_WORDS", "state_label", "state_word"]

#: state -> (words, tone); tone is one of ok, wait, bad, neutral.
STATE_WORDS: dict[str, tuple[str, str]] = {
    "pending": ("pending", "neutral"), "progressing": ("progressing", "ok"), "baking": ("baking", "ok"),
    "waiting_window": ("waiting for a window", "wait"), "waiting_approval": ("waiting for approval", "wait"),
    "paused": ("paused", "wait"), "hold": ("ON HOLD: a person decides", "wait"),
    "halted": ("HALTED", "bad"), "rolling_back": ("ROLLING BACK", "bad"),
    "rolled_back": ("rolled back", "bad"), "completed": ("completed", "ok"), "aborted": ("aborted", "neutral"),
    "exposing": ("exposing", "ok"), "passed": ("passed", "ok"), "waiting": ("waiting", "neutral"),
    "successful": ("successful", "ok"), "failed": ("FAILED", "bad"), "inconclusive": ("inconclusive", "wait"),
    "error": ("error", "bad"),
}


def state_word(state: str) -> str:
    """The words for a state; an unknown state is shown with spaces for underscores, never hidden."""
    return STATE_WORDS.get(state, (state.replace("_", " "), "neutral"))[0]


def state_label(state: str, message: str = "") -> str:
    """The words for a state with its real reason, read from the engine's message.

    ``waiting_window`` covers every "nothing may be exposed now" case; the message names the first blocked
    host and why (its change window is closed, its tenant's delay is not over, it is offline) and how many
    hosts the disruption budgets block.  Saying "waiting for a window" when the windows are open and the real
    cause is an offline host or a budget sends people to the wrong fix.
    """
    if state != "waiting_window":
        return state_word(state)
    first = message.split(";", 1)[0]
    causes = []
    if ": closed:" in first:
        causes.append("a change window")
    elif "tenant delay" in first:
        causes.append("a tenant delay")
    elif ": offline (" in first:
        causes.append("offline hosts")
    if "disruption budget" in message:
        causes.append("a disruption budget")
    if not causes:
        return "waiting: no host eligible now"
    return "waiting for " + " and ".join(causes)
