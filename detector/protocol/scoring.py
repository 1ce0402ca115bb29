"""The points rule, shared by the edge (which signs the points it claims) and the backend
(which applies its own)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydantic import Field

from detector.protocol.config import Section


class PointsConfig(Section):
    """Points per severity: littering subtracts them, clean-up of that litter gives them back."""

    small: int = Field(10, ge=0, le=1_000_000, description="points of a small item")
    bag: int = Field(30, ge=0, le=1_000_000, description="points of a bag-sized item (or a bag)")
    bulky: int = Field(100, ge=0, le=1_000_000, description="points of a bulky item")

    def of(self, severity: str) -> int:
        return int(getattr(self, severity))

    def cleanup_credit(self, taken: Iterable[tuple[int, str]], debit_of: Callable[[int], int | None]) -> int:
        """Points a clean-up gives back: for each (litter, severity) taken, what its littering
        cost (`debit_of`, None if no littering was seen), else its severity's points (litter
        that was there before). The edge and the backend both score by this rule."""
        total = 0
        for litter, severity in taken:
            debit = debit_of(litter)
            total += debit if debit is not None else self.of(severity)
        return total
