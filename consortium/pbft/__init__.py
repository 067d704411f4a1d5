"""PBFT (Castro & Liskov, OSDI 1999) as a sans-IO state machine over hash-chained blocks.

`Replica` takes one input (a peer's message, a client request, a timer) and `now`, and returns
`Actions`: persist, then send, then report committed blocks and client replies. The ledger plugs
in through the `Application` protocol.
"""

from consortium.pbft.actions import (
    Actions,
    CancelTimer,
    CommittedBlock,
    Persist,
    Reply,
    Send,
    SetTimer,
)
from consortium.pbft.app import Application, InvalidBlock, InvalidRequest, MissingParent
from consortium.pbft.replica import Replica
from consortium.pbft.wire import WireCache

__all__ = [
    "Actions",
    "Application",
    "CancelTimer",
    "CommittedBlock",
    "InvalidBlock",
    "InvalidRequest",
    "MissingParent",
    "Persist",
    "Replica",
    "Reply",
    "Send",
    "SetTimer",
    "WireCache",
]
