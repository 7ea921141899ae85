"""Rollout, wave and gate states in words, shared by the dashboard and the CLI (one rule, one place).

The engine's state names are identifiers (``waiting_window``); people read the words.  Each word comes with
a tone for the dashboard's colours, which are never the only cue: the word is always shown.
"""

from __future__ import annotations

__all__ = ["STATE_WORDS", "state_word"]

#: state -> (words, tone); tone is one of ok, wait, bad, neutral.
STATE_WORDS: dict[str, tuple[str, str]] = {
    "pending": ("pending", "neutral"), "progressing": ("progressing", "ok"), "baking": ("baking", "ok"),
    "waiting_window": ("waiting for a window", "wait"), "waiting_approval": ("waiting for approval", "wait"),
    "paused": ("paused", "wait"), "halted": ("HALTED", "bad"), "rolling_back": ("ROLLING BACK", "bad"),
    "rolled_back": ("rolled back", "bad"), "completed": ("completed", "ok"), "aborted": ("aborted", "neutral"),
    "exposing": ("exposing", "ok"), "passed": ("passed", "ok"), "waiting": ("waiting", "neutral"),
    "successful": ("successful", "ok"), "failed": ("FAILED", "bad"), "inconclusive": ("inconclusive", "wait"),
    "error": ("error", "bad"),
}


def state_word(state: str) -> str:
    """The words for a state; an unknown state is shown with spaces for underscores, never hidden."""
    return STATE_WORDS.get(state, (state.replace("_", " "), "neutral"))[0]
