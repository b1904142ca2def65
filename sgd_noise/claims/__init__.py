"""Claims: the statistics every verdict stands on (`stats`), the contract a claim follows (`contract`), and one
module per claim of the seed papers (its parts beside it). `claims()` finds every claim; the names a user needs to
run and judge one are imported here."""
from .contract import Claim, Spec, claims, get_claim, load_verdicts, verdict
from .stats import Check

__all__ = ['Claim', 'Spec', 'claims', 'get_claim', 'load_verdicts', 'verdict', 'Check']
