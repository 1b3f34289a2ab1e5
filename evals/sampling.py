"""Samples from a checkpoint: checkpoint → prompts → samples → files.

``sample_checkpoint`` writes three files into ``out``:

- ``samples.smt``: every sample as SMT-ABC text (the model's own notation), each after a ``% sample i``
  comment line and separated by a blank line, so ABC readers see one tune per sample;
- ``samples.abc``: the samples that convert to standard ABC (``corpus.smt.smt_to_abc``), each after the
  same comment line; a sample that does not convert stays in ``samples.smt`` only;
- ``samples.jsonl``: one JSON object per sample, in order: ``index``, ``prompt`` (none or first-bar),
  ``prompt_id``, ``prompt_tokens``, ``tokens`` (new tokens, the end-of-tune token left out), ``stop`` (eos
  or max_tokens), ``seed``, ``converted`` and ``error`` (why it did not convert, else null).

Prompts: ``none`` starts every sample from the end-of-tune token, which is what precedes each tune in the
training stream; ``first-bar`` gives the header and first bar group of a held-out tune (the corpus'
validation split, never trained on), as MuPT Tables 4–5 condition their generations. Sample i gets seed
``seed + i``, and with ``first-bar`` the i-th usable validation tune (cycling when n exceeds them).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from corpus.abc import AbcError
from corpus.shards import load_tokens, verify_corpus
from corpus.smt import smt_to_abc
from corpus.sources import CorpusInputError
from corpus.tokenizer import END_OF_TUNE, GROUP, NEWLINE, AbcTokenizer
from trainer.config import ModelConfig
from trainer.folder import RunFolder, read_json, write_atomic
from trainer.model import Decoder
from trainer.presets import PRESETS, get_preset
from trainer.sample import Generated, SamplingSettings, generate

PROMPTS = ("none", "first-bar")


class SamplingError(ValueError):
    """Input the sample command cannot use; the message names it."""

    exit_status = 2  # the command line's status for it (see smslab/cli.py)


@dataclass(frozen=True)
class Source:
    """What sampling reads: the checkpoint (its weights, loaded once), the model's shape and the corpus (its
    tokenizer and held-out tunes)."""

    checkpoint: Path
    config: ModelConfig
    corpus: Path
    weights: dict[str, torch.Tensor] = field(repr=False, compare=False, default_factory=dict)


@dataclass(frozen=True)
class Prompt:
    prompt_id: str  # "none" or "val:J", J the validation tune's index
    tokens: tuple[int, ...]  # starts with the end-of-tune token


def resolve_source(run: str | Path | None, checkpoint: str | Path | None, corpus: str | Path | None) -> Source:
    """The checkpoint of ``run`` (its ``checkpoints/last.ckpt``) or ``checkpoint`` itself, the model shape from
    the run record (a bare checkpoint's shape is matched to a preset), and ``corpus`` or the run's own."""
    if run is not None:
        folder = RunFolder(Path(run))
        if not folder.path.is_dir():
            raise SamplingError(f"--run {folder.path}: no such run folder")
        if not folder.spec_file.is_file():
            raise SamplingError(f"--run {folder.path}: not a run folder (no spec.json)")
        path = folder.checkpoint
        if not path.is_file():
            raise SamplingError(f"--run {folder.path}: no checkpoint yet ({path}); train the run first")
    else:
        path = Path(str(checkpoint))
        if not path.is_file():
            raise SamplingError(f"--checkpoint {path}: no such file")
        folder = RunFolder(path.parent.parent)  # a run folder keeps checkpoints/last.ckpt
    state = load_weights(path)
    record = read_json(folder.spec_file)
    spec = record.get("spec")
    vocab = int(state["embed.weight"].shape[0])
    if isinstance(spec, dict) and record.get("corpus"):
        try:
            config = get_preset(str(spec["preset"])).config(vocab, int(spec["context"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SamplingError(f"{folder.spec_file}: not a whole run record ({type(exc).__name__}: {exc})") from None
        corpus = corpus if corpus is not None else str(record["corpus"])
    else:
        config = config_from_weights(state, path)
        if corpus is None:
            raise SamplingError(f"--checkpoint {path}: not inside a run folder (no run spec.json beside it); "
                                "give --corpus, the corpus it was trained on")
    return Source(path, config, Path(corpus), state)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The decoder's weights of a Lightning checkpoint (or of a plain state dict), loaded weights-only: a
    checkpoint is data, and unpickling arbitrary objects from it could run code."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        state = saved.get("state_dict", saved)
        weights = {k.removeprefix("model."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    except Exception as exc:  # noqa: BLE001  torch raises many kinds for a bad file; all mean the same here
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise SamplingError(f"{path}: not a checkpoint smslab can load safely ({type(exc).__name__}: {reason})") from None
    if "embed.weight" not in weights:
        raise SamplingError(f"{path}: not a checkpoint of smslab's decoder (no embed.weight among its weights)")
    return weights


def config_from_weights(state: dict[str, torch.Tensor], path: Path) -> ModelConfig:
    """The shape of a checkpoint outside a run folder: its widths and depth matched to a preset (the head
    count cannot be read off the weights)."""
    vocab, d_model = state["embed.weight"].shape
    n_layers = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    d_ff = int(state["blocks.0.mlp.gate.weight"].shape[0]) if n_layers else 0
    for preset in PRESETS.values():
        if (preset.d_model, preset.n_layers, preset.d_ff) == (d_model, n_layers, d_ff):
            return preset.config(int(vocab))
    raise SamplingError(f"--checkpoint {path}: its shape (hidden {d_model}, {n_layers} layers, ffn {d_ff}) is no "
                        "preset's; sample it from its run folder with --run")


def load_decoder(source: Source, tokenizer: AbcTokenizer, device: torch.device) -> Decoder:
    """The checkpoint's decoder, refused when its vocabulary is not the tokenizer's."""
    if source.config.vocab_size != tokenizer.vocab_size:
        raise SamplingError(
            f"{source.checkpoint}: the checkpoint has a vocabulary of {source.config.vocab_size:,} tokens but the "
            f"tokenizer of {source.corpus} has {tokenizer.vocab_size:,}; sample with the corpus it was trained on")
    model = Decoder(source.config)
    try:
        model.load_state_dict(source.weights, strict=True)
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()
        raise SamplingError(f"{source.checkpoint}: its weights do not fit a {source.config.d_model}-wide, "
                            f"{source.config.n_layers}-layer decoder ({detail[1].strip() if len(detail) > 1 else exc})") from None
    return model.to(device).eval()


def open_corpus(folder: Path) -> AbcTokenizer:
    """The corpus' tokenizer, after checking its files against its manifest."""
    if not folder.is_dir():
        raise SamplingError(f"corpus {folder}: no such folder (give --corpus)")
    try:
        verify_corpus(folder)
    except CorpusInputError as exc:
        raise SamplingError(f"corpus {exc}") from None
    return AbcTokenizer.load(folder / "tokenizer.json")


def make_prompts(kind: str, n: int, corpus: Path, tokenizer: AbcTokenizer, context: int) -> list[Prompt]:
    """n prompts of ``kind``; first-bar ones from the validation tunes whose prompt fits in half the context
    (the other half is left for the sample)."""
    eos = tokenizer.token_id(END_OF_TUNE)
    if kind == "none":
        return [Prompt("none", (eos,))] * n
    if kind != "first-bar":
        raise SamplingError(f"--prompt must be one of {', '.join(PROMPTS)}, got {kind!r}")
    group, newline = tokenizer.token_id(GROUP), tokenizer.token_id(NEWLINE)
    tokens = np.asarray(load_tokens(corpus, "val"))
    starts = np.load(corpus / "val_index.npy").tolist()
    usable: list[Prompt] = []
    for j, (start, end) in enumerate(zip(starts, [*starts[1:], len(tokens)], strict=True)):
        tune = tokens[start:end].tolist()
        delimiters = [i for i, t in enumerate(tune) if t == group]
        if len(delimiters) < 2:
            continue  # no whole bar group
        cut = delimiters[1] + 1  # just after the group's closing <|>, and its line break with it
        cut += 1 if cut < len(tune) and tune[cut] == newline else 0
        if 1 + cut <= context // 2:
            usable.append(Prompt(f"val:{j}", (eos, *tune[:cut])))
        if len(usable) == n:
            break
    if not usable:
        raise SamplingError(f"corpus {corpus}: no validation tune has a header and first bar group within half the "
                            f"context ({context // 2} tokens)")
    return [usable[i % len(usable)] for i in range(n)]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SamplingError(f"--device {name}: no CUDA device here")
    return torch.device(name)


def check_request(settings: SamplingSettings, n: int, batch_size: int, out: Path) -> None:
    """``SamplingError`` for a request out of range, before anything is loaded."""
    if n < 1 or batch_size < 1:
        raise SamplingError(f"--n and --batch-size must be at least 1, got {n} and {batch_size}")
    try:
        settings.check()
    except ValueError as exc:
        raise SamplingError(str(exc)) from None
    if out.exists() and not out.is_dir():
        raise SamplingError(f"--out {out}: is a file, not a folder")


def sample_checkpoint(source: Source, prompt: str, n: int, settings: SamplingSettings, out: Path,
                      batch_size: int = 16, device: str = "auto") -> dict[str, object]:
    """Draw n samples and write them to ``out`` (see the module docstring); returns a summary."""
    check_request(settings, n, batch_size, out)
    tokenizer = open_corpus(source.corpus)
    model = load_decoder(source, tokenizer, pick_device(device))
    prompts = make_prompts(prompt, n, source.corpus, tokenizer, source.config.max_seq_len)
    # One cap for every sample, whatever its batch: the context left after the longest prompt, at most.
    cap = min(settings.max_new_tokens, source.config.max_seq_len - max(len(p.tokens) for p in prompts))
    settings = SamplingSettings(**{**asdict(settings), "max_new_tokens": cap})
    eos = tokenizer.token_id(END_OF_TUNE)
    started = time.perf_counter()
    results: list[Generated] = []
    for first in range(0, n, batch_size):
        batch = prompts[first : first + batch_size]
        seeds = [settings.seed + i for i in range(first, first + len(batch))]
        results += generate(model, [p.tokens for p in batch], settings, eos, seeds)
    seconds = time.perf_counter() - started
    rows = write_samples(out, prompt, prompts, results, settings.seed, tokenizer)
    new_tokens = sum(len(r.tokens) for r in results)
    return {
        "out": str(out), "checkpoint": str(source.checkpoint), "corpus": str(source.corpus), "samples": n,
        "converted": sum(1 for r in rows if r["converted"]),
        "stops": {stop: sum(1 for r in results if r.stop == stop) for stop in ("eos", "max_tokens")},
        "new_tokens": new_tokens, "seconds": round(seconds, 3),
        "tokens_per_s": round(new_tokens / seconds, 1) if seconds > 0 else None,
        "settings": {**asdict(settings), "prompt": prompt, "batch_size": batch_size},
        "files": [str(out / name) for name in ("samples.smt", "samples.abc", "samples.jsonl")],
    }


def write_samples(out: Path, prompt: str, prompts: list[Prompt], results: list[Generated], seed: int,
                  tokenizer: AbcTokenizer) -> list[dict[str, object]]:
    """The three files of ``out``; returns the JSONL rows."""
    smt_parts, abc_parts, rows = [], [], []
    for index, (p, result) in enumerate(zip(prompts, results, strict=True)):
        text = tokenizer.decode([*p.tokens[1:], *result.tokens])  # the prompt without its end-of-tune token
        text = text if text.endswith("\n") else text + "\n"
        smt_parts.append(f"% sample {index}\n{text}")
        error = None
        try:
            abc_parts.append(f"% sample {index}\n{smt_to_abc(text)}")
        except AbcError as exc:
            error = str(exc)
        rows.append({"index": index, "prompt": prompt, "prompt_id": p.prompt_id, "prompt_tokens": len(p.tokens),
                     "tokens": len(result.tokens), "stop": result.stop, "seed": seed + index,
                     "converted": error is None, "error": error})
    write_atomic(out / "samples.smt", "\n".join(smt_parts))
    write_atomic(out / "samples.abc", "\n".join(abc_parts))
    write_atomic(out / "samples.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return rows
