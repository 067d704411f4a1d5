"""What can go wrong with a scenario: a malformed file, or a step that cannot even be attempted."""

from __future__ import annotations

from consortium.errors import RemoteError


class ScenarioFileError(RemoteError):
    """A scenario file is malformed; the message names the file, the step and the field."""


class StepError(Exception):
    """A step could not be carried out as written (an unknown member, a value of the wrong type):
    the runner reports it as that step's failure, with this message as the reason."""
