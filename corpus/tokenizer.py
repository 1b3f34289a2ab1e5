"""Byte-level BPE over SMT-ABC (MuPT §3.3), trained with Hugging Face ``tokenizers``.

MuPT used YouTokenToMe (unmaintained); ``tokenizers`` trains the same kind of
BPE faster and is kept up. As in the paper: no normalisation, no dummy prefix
(``add_prefix_space=False``).

Line breaks are smslab's choice, not the paper's: the paper's text describes
bars separated by spaces, while the prompts of MuPT's released models keep
ABC's line breaks. smslab keeps them too (ABC's header fields and voice lines
end at a line break, so it carries meaning) and writes each as the special
token ``<n>``, so that a line break is always one token that BPE never merges
with the notes around it; ``decode`` turns it back into a line break. ``<|>``
(the SMT-ABC bar-group delimiter), ``<n>`` and ``<|endoftext|>`` (between
tunes) are special tokens, never split or merged. Byte-level BPE covers every
byte, so ``decode(encode(x)) == x`` for every text without a literal special
token (the corpus skips tunes that contain one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

GROUP = "<|>"
NEWLINE = "<n>"
END_OF_TUNE = "<|endoftext|>"
SPECIAL_TOKENS = (END_OF_TUNE, GROUP, NEWLINE)


@dataclass(frozen=True)
class AbcTokenizer:
    """A trained tokenizer; wraps ``tokenizers.Tokenizer``."""

    inner: object  # tokenizers.Tokenizer

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> AbcTokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 256 + len(SPECIAL_TOKENS):
            raise ValueError(f"vocab size {vocab_size} is below the 256 byte tokens + {len(SPECIAL_TOKENS)} special ones")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator((to_model_text(t) for t in texts), trainer=trainer)
        return cls(tok)

    @classmethod
    def load(cls, path: str | Path) -> AbcTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)))

    def save(self, path: str | Path) -> None:
        self.inner.save(str(path))  # type: ignore[attr-defined]

    @property
    def vocab_size(self) -> int:
        return int(self.inner.get_vocab_size())  # type: ignore[attr-defined]

    def token_id(self, token: str) -> int:
        return int(self.inner.token_to_id(token))  # type: ignore[attr-defined]

    def encode(self, text: str) -> list[int]:
        return list(self.inner.encode(to_model_text(text)).ids)  # type: ignore[attr-defined]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode many texts at once (the Rust side runs them in parallel)."""
        encodings = self.inner.encode_batch([to_model_text(t) for t in texts])  # type: ignore[attr-defined]
        return [list(e.ids) for e in encodings]

    def decode(self, ids: Sequence[int]) -> str:
        return from_model_text(self.inner.decode(list(ids), skip_special_tokens=False))  # type: ignore[attr-defined]

    def content_hash(self) -> str:
        return "sha256:" + hashlib.sha256(self.inner.to_str().encode()).hexdigest()  # type: ignore[attr-defined]


def to_model_text(text: str) -> str:
    """Line breaks as smslab's <n> token (see the module docstring for why)."""
    return text.replace("\n", NEWLINE)


def from_model_text(text: str) -> str:
    return text.replace(NEWLINE, "\n")
