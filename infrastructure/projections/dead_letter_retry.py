"""The retry both dead-letter stores hand out: the locked stream's letters, and how it went.

The adapters apply the outcome when the retry's context exits cleanly; this object only
records it, so a retry that raises leaves nothing to undo.
"""

from __future__ import annotations

from collections.abc import Sequence

from application.ports.dead_letters import DeadLetter


class StreamRetry:
    """Implements `application.ports.dead_letters.DeadLetterRetry`."""

    def __init__(self, letters: Sequence[DeadLetter]) -> None:
        self._letters = tuple(letters)
        self.through_position: int | None = None
        self.error: str | None = None

    @property
    def letters(self) -> Sequence[DeadLetter]:
        return self._letters

    def settle(self, through_position: int | None, error: str | None = None) -> None:
        # An error is about the next letter; with none left it could never be shown or
        # retried, and the stream would stay parked with nothing in it.
        if error is not None and self.next_position(through_position) is None:
            raise ValueError(
                f"an error was reported, but no letter is left after {through_position}"
            )
        self.through_position, self.error = through_position, error

    def next_position(self, through_position: int | None) -> int | None:
        """The position of the first letter after `through_position` (None: no letter is)."""
        return next(
            (
                letter.event.position
                for letter in self._letters
                if through_position is None or letter.event.position > through_position
            ),
            None,
        )
