"""Why a course test failed: one exception per cause, all built alike.

Every failure the grader understands is a `Failure` with

- ``summary``: one line that is safe to show for a *hidden* test: it names
  the check and the shape, the type of the student's exception and the line
  it came from, or what happened to the worker; never an expected value, a
  number derived from one, or text the student's code chose;
- ``message``: what a *public* test shows: the summary's facts in full
  (expected and got, the student's own exception text and traceback);
- ``hint``: the likely cause, in the student's words, or None;
- ``origin``: who failed: ``test`` (a wrong result), ``student`` (their code
  raised, or returned something that is not plain data), ``worker`` (it
  died, timed out, or the unit was blocked before running).

The pytest plugin records these fields as they are; scoring picks the
summary or the message by where the test lives. Nothing is parsed back out
of text.
"""

from __future__ import annotations


class Failure(Exception):
    origin = "test"
    kind = "failure"

    def __init__(self, summary: str, detail: str = "", hint: str | None = None, message: str | None = None):
        self.summary = summary
        self.detail = detail
        self.hint = hint
        if message is None:
            message = summary + (f"\n{detail}" if detail else "")
        self.message = message
        super().__init__(message + (f"\nhint: {hint}" if hint else ""))

    def record(self) -> dict[str, str]:
        """The fields a report needs, as plain strings."""
        fields = {"summary": self.summary, "message": self.message, "origin": self.origin, "kind": self.kind}
        if self.hint:
            fields["hint"] = self.hint
        return fields


class WorkerFailure(Failure):
    """The worker failed during a call (died, timed out, broke a limit or the protocol)."""

    origin = "worker"
    kind = "worker"

    def __init__(self, text: str):
        super().__init__(text)


class UnitBlocked(Failure):
    """Every test of a unit fails for one reason found before running it."""

    origin = "worker"
    kind = "blocked"

    def __init__(self, text: str):
        super().__init__(text)


class StudentResultError(Failure, AssertionError):
    """The student's code returned something that is not plain data (in-process)."""

    origin = "student"
    kind = "notplain"

    def __init__(self, text: str):
        super().__init__("your code returned something that is not plain data", message=text)
