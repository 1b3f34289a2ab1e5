"""trainer: MuPT's LLaMA-style decoder, trained with Lightning on exact token budgets."""
