"""The registered scaling laws: the paper's, in the order of MuPT Table 3, then smslab's own."""

from lawfit.laws.base import Covariates, Law, ParamSpec, all_laws, get_law
from lawfit.laws.chinchilla import CHINCHILLA
from lawfit.laws.data_constrained import DATA_CONSTRAINED
from lawfit.laws.mupt import DPRIME, ND, SMS
from lawfit.laws.repetition import REPETITION
from lawfit.names import LAW_NAMES, LAW_PARAMETER_COUNTS

# The names other packages read without numpy (lawfit.names) are the laws registered here, in order.
if tuple(law.name for law in all_laws()) != LAW_NAMES:
    raise RuntimeError(
        f"registered laws {[law.name for law in all_laws()]} differ from lawfit.names.LAW_NAMES {list(LAW_NAMES)}: "
        "register every law named there, in that order, and no other"
    )
if {law.name: len(law.params) for law in all_laws()} != LAW_PARAMETER_COUNTS:
    raise RuntimeError("lawfit.names.LAW_PARAMETER_COUNTS differs from the registered laws' parameters")

__all__ = [
    "CHINCHILLA",
    "DATA_CONSTRAINED",
    "DPRIME",
    "ND",
    "REPETITION",
    "SMS",
    "Covariates",
    "Law",
    "ParamSpec",
    "all_laws",
    "get_law",
]
