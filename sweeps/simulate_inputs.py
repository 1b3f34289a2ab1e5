"""What ``smslab campaign simulate`` reads: the spec's campaign on its built corpus or on a stand-in for one
(``--unique-tokens``), and ``--rescale``. Errors are ``SpecError``s naming the file or the option."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from corpus.shards import FractionInfo, Manifest
from sweeps.proposals import candidate_specs
from sweeps.settings import SpecError
from sweeps.spec import Campaign, load_campaign
from trainer.spec import CorpusInfo, Prepared, RunError, RunSpec, prepare


@dataclass(frozen=True)
class SimulatedCampaign(Campaign):
    """A campaign whose runs are prepared on ``corpus_info`` (the built corpus, or a stand-in)."""

    corpus_info: CorpusInfo | None = None

    def prepare(self, spec: RunSpec) -> Prepared:
        assert self.corpus_info is not None
        return prepare(spec, self.corpus_info)


def parse_pairs(option: str, text: str, keys: Callable[[str], object]) -> dict[object, float]:
    """``K=V,K=V`` with positive finite numbers V; a SpecError naming ``option`` otherwise."""
    out: dict[object, float] = {}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        try:
            number, name = float(value), keys(key)
        except (ValueError, KeyError):
            raise SpecError(f"{option}: {item!r} is not of the form NAME=NUMBER") from None
        if not sep or not (math.isfinite(number) and number > 0):
            raise SpecError(f"{option}: {item!r} needs a positive number after '='")
        out[name] = number
    return out


def parse_rescale(text: str | None) -> tuple[float, float]:
    if not text:
        return 1.0, 1.0
    factors = parse_pairs("--rescale", text, lambda k: {"N": "N", "D": "D"}[k])
    return factors.get("N", 1.0), factors.get("D", 1.0)


def fraction_tokens(text: str, fractions: Sequence[float], source: Path) -> dict[float, int]:
    """``--unique-tokens``: U (fraction f has f·U tokens) or FRACTION=TOKENS,... for every fraction."""
    try:
        total = float(text)
    except ValueError:
        given = parse_pairs("--unique-tokens", text, float)
        counts = {}
        for f in fractions:
            match = [v for g, v in given.items() if math.isclose(f, float(g))]  # type: ignore[arg-type]
            if not match:
                raise SpecError(f"--unique-tokens gives no token count for data fraction {f:g} of {source}") from None
            counts[f] = round(match[0])
        return counts
    if not (math.isfinite(total) and total > 0):
        raise SpecError(f"--unique-tokens must be a positive number of tokens, got {text}")
    return {f: round(f * total) for f in fractions}


def simulated_campaign(spec: str | Path, unique_tokens: str | None) -> tuple[SimulatedCampaign, bool]:
    """The spec's campaign on its built corpus, or on ``--unique-tokens`` (U: fraction f has f·U tokens, or
    FRACTION=TOKENS,...); whether the vocabulary (so ln V, a uniform guess's loss) is known."""
    campaign = load_campaign(spec, check_corpus=False)
    if campaign.plan is None:
        raise SpecError(f"{campaign.source}: a campaign needs a [plan] table (target_flops, budget_flops, ...)")
    fractions = sorted({*campaign.grid.fractions, *([campaign.lr_search.fraction] if campaign.lr_search else [])})
    if unique_tokens is None:
        if not (campaign.corpus / "manifest.json").is_file():
            raise SpecError(f"{campaign.source}: [campaign] corpus {campaign.corpus} is not built (no manifest.json), "
                            "so the simulation cannot read how many unique tokens each data fraction has; give "
                            "--unique-tokens U (the corpus's training tokens: fraction f has f·U) or "
                            "--unique-tokens FRACTION=TOKENS,... (one per grid fraction), or build the corpus "
                            "(`smslab corpus build`)")
        campaign = load_campaign(spec)  # every run checked against the corpus
        info = CorpusInfo.read(campaign.corpus)
        known_vocab = True
    else:
        counts = fraction_tokens(unique_tokens, fractions, campaign.source)
        manifest = Manifest("simulated", "simulated", {}, [], "", 2048, "uint16", {},
                            [FractionInfo(f, 0, n, n) for f, n in counts.items()])
        info = CorpusInfo(campaign.corpus, manifest)
        known_vocab = False
    sim = SimulatedCampaign(**{f.name: getattr(campaign, f.name) for f in dataclasses.fields(Campaign)},
                            corpus_info=info)
    for run in (*campaign.runs, *candidate_specs(sim, {})):
        try:
            sim.prepare(run)
        except RunError as exc:
            raise SpecError(f"{campaign.source}: [grid]/[train]/[plan]: {exc}") from None
    return sim, known_vocab
