"""Errors the user can fix: printed by the CLI as one line, exit status 2.

`UserError` is for mistakes on the command line or in the files it names.
`CourseError` (course.toml) and `TargetError` (--target) are its kin, kept
beside the code that raises them; the CLI treats all three alike.
"""


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""
