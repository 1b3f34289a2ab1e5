"""corpus: ABC tunes to SMT-ABC and back, the BPE tokenizer, packed token shards with nested data fractions."""
