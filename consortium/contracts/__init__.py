"""The business contracts of DOMAIN.md: pure, synchronous, deterministic rules over a state view.

The ledger calls `genesis_writes` once, `member_public_key` to check each transaction's signer,
and `execute` for each transaction on its own overlay; `business_day` goes into block headers and
`audit_report` is the regulator's view; `credit_report` shows a member's credit score with every
factor behind it; `transfer_statement` is what a buyer of securitisation units signs.
"""

from __future__ import annotations

from consortium.contracts.audit import audit_report
from consortium.contracts.clock import business_day
from consortium.contracts.collection import bid_commitment, contact_commitment
from consortium.contracts.context import (
    RuleViolation,
    SignatureCheck,
    SignatureClaim,
    StateView,
    TxContext,
)
from consortium.contracts.genesis import genesis_writes
from consortium.contracts.issuance import transfer_statement
from consortium.contracts.operations import (
    OPERATIONS,
    PARAMETERS,
    created_keys,
    execute,
    signature_claim,
)
from consortium.contracts.pricing import commission_ceiling_bp
from consortium.contracts.receivables import confirmation_statement
from consortium.contracts.registry import member
from consortium.contracts.scoring import credit_report, credit_score
from consortium.contracts.warehouse import amendment_statement


def member_public_key(view: StateView, member_id: str) -> bytes | None:
    """The member's current business key (a rotated-out key is not returned), None if unknown."""
    record = member(view, member_id)
    return None if record is None else record["key"]


__all__ = [
    "OPERATIONS",
    "PARAMETERS",
    "RuleViolation",
    "SignatureCheck",
    "SignatureClaim",
    "StateView",
    "TxContext",
    "amendment_statement",
    "audit_report",
    "bid_commitment",
    "business_day",
    "commission_ceiling_bp",
    "confirmation_statement",
    "contact_commitment",
    "created_keys",
    "credit_report",
    "credit_score",
    "execute",
    "genesis_writes",
    "member_public_key",
    "signature_claim",
    "transfer_statement",
]
