"""The registered scaling laws, in the order of MuPT Table 3."""

from lawfit.laws.base import Covariates, Law, ParamSpec, all_laws, get_law
from lawfit.laws.chinchilla import CHINCHILLA
from lawfit.laws.data_constrained import DATA_CONSTRAINED
from lawfit.laws.mupt import DPRIME, ND, SMS

__all__ = [
    "CHINCHILLA",
    "DATA_CONSTRAINED",
    "DPRIME",
    "ND",
    "SMS",
    "Covariates",
    "Law",
    "ParamSpec",
    "all_laws",
    "get_law",
]
