"""lawfit's names and constants that other packages use without loading numpy or scipy.

Spec checks (sweeps), command-line choices and dashboards name the laws and
price runs in FLOPs; importing this module costs nothing, so they read them
here instead of keeping copies. The law registry (``lawfit/laws``) checks at
import that it registers exactly ``LAW_NAMES``, in this order.
"""

from __future__ import annotations

# The paper's laws, in the order of MuPT Table 3: Chinchilla (Eq. 7), the
# data-constrained law (Eq. 8–10), D'' (Eq. 2–3), the N·D term (Eq. 4), SMS (Eq. 5–6).
# What a comparison fits when it is not told which laws to fit.
PAPER_LAW_NAMES: tuple[str, ...] = ("chinchilla", "data_constrained", "dprime", "nd", "sms")

# Every registered law: the paper's, then smslab's own (fitted only where named):
# sms_repetition, SMS with an overfitting term driven by epochs D/U_D instead of raw D (lawfit/laws/repetition.py).
LAW_NAMES: tuple[str, ...] = (*PAPER_LAW_NAMES, "sms_repetition")

# C ≈ 6·N·D: training FLOPs per parameter per token seen (Kaplan et al. 2020;
# Hoffmann et al. 2022; MuPT Eq. 1's constraint).
FLOPS_PER_PARAM_TOKEN: float = 6.0

# How many parameters each law fits (A, B, E, alpha, beta; + R_D*, R_N*; + k; + d; + k_d, k_n, k_u, k_in):
# a fit needs at least as many points. The registry checks these against the laws' own parameters.
LAW_PARAMETER_COUNTS: dict[str, int] = {
    "chinchilla": 5, "data_constrained": 7, "dprime": 6, "nd": 7, "sms": 11,
    "sms_repetition": 12,  # nd's 7 + s, k_r, k_n, k_u, k_in
}

# What N counts in a loss-point table and in every fit made from it: parameters without the embedding
# matrices (Kaplan et al. 2020; the OLMo ladder's N) or with them (MuPT's model names and N: the 190M model's
# embeddings are 40 % of it). Fitted alpha and N* are comparable only within one convention.
N_CONVENTIONS: tuple[str, ...] = ("non_embedding", "with_embeddings")
N_UNSTATED = "unstated"
