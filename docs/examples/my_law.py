"""An example law file for `lawfit.user_law.load_law_file`: MuPT Eq. 2 with D'' (Eq. 3), one exponent shared.

L = A/N^alpha + B/D''^beta + E with beta tied to alpha (a law with one exponent) and
D'' = (1 - k^(D/U_D))/(1 - k)·U_D, MuPT Eq. 3, written ``Dpp``.
"""

from lmfit import Parameters

# The law's name in fits and reports; it must differ from the built-in laws (chinchilla, dprime, ...).
NAME = "one_exponent_dprime"
TITLE = "D'' law, one exponent"
DOC = "L = A/N^alpha + B/D''^alpha + E, D'' = (1 - k^(D/U_D))/(1 - k)·U_D"

# Names: N (parameters), D (tokens seen), U_D (unique tokens), Dpp (D'') and the parameters below.
EXPRESSION = "A/N**alpha + B/Dpp**beta + E"

PARAMS = Parameters()
# min > 0 makes a parameter a scale, fitted as log(value); user_data gives the unit shown in reports.
PARAMS.add("A", value=400.0, min=1e-12, max=1e30, user_data={"unit": "loss·params^alpha"})
PARAMS.add("B", value=1e4, min=1e-12, max=1e30, user_data={"unit": "loss·tokens^beta"})
PARAMS.add("E", value=1.7, min=1e-6, max=1e3, user_data={"unit": "loss (nats/token)"})
PARAMS.add("alpha", value=0.3, min=0.0, max=2.0)  # min = 0: fitted as the value itself
PARAMS.add("beta", expr="alpha")  # tied: computed from alpha, not fitted
# D'' needs 0 < k < 1. vary=False would hold it at its value; here it is fitted.
PARAMS.add("k", value=0.9, min=1e-6, max=1 - 1e-9, user_data={"unit": "1"})

# Optional start values (raw units) for some parameters; the others get lawfit's default spread.
GRID = {"k": (0.5, 0.9, 0.99)}
