"""What ``multicast doctor`` reports: one :class:`Check` per finding, with its :class:`Status`."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Check", "Status"]


class Status(enum.Enum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: what was checked, how it stands, and the fix for a problem."""

    area: str
    subject: str
    status: Status
    detail: str
    fix: str | None = None

    @property
    def problem(self) -> bool:
        return self.status in (Status.WARN, Status.FAIL)

    def as_dict(self) -> dict[str, object]:
        return {
            "area": self.area,
            "subject": self.subject,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }

    def __str__(self) -> str:
        text = f"[{self.status.value:4}] {self.area:11} {self.subject}: {self.detail}"
        return f"{text}\n       fix: {self.fix}" if self.fix else text
