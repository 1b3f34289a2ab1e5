"""Grid spec files: expansion into run specs with stable ids, and every kind of bad spec refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.shards import BuildConfig, build_corpus
from corpus.sources import user_files
from sweeps.spec import SpecError, load_campaign

GOOD = """
[campaign]
name = "demo"
corpus = "corpus"

[grid]
presets = ["tiny-0.1m", "tiny-0.3m"]
fractions = [0.25, 1]
epochs = [1, 2, 4]
seeds = [0]

[train]
context = 32
batch_tokens = 512

[launcher]
kind = "local"
max_parallel = 2
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("campaign")
    abc = root / "abc"
    abc.mkdir()
    (abc / "t.abc").write_text("\n\n".join(f"X:{i}\nT:t{i}\nK:D\n|: AB{'cd' * (i % 7 + 1)} | efga :|\n" for i in range(60)))
    build_corpus(user_files([abc]), root / "corpus", BuildConfig(vocab_size=300, fractions=(0.25, 1.0)))
    return root


def write(folder: Path, text: str) -> Path:
    path = folder / "spec.toml"
    path.write_text(text)
    return path


def test_a_grid_expands_to_its_cartesian_product_with_stable_ids(folder: Path):
    campaign = load_campaign(write(folder, GOOD))
    assert campaign.name == "demo" and campaign.corpus == (folder / "corpus").resolve()
    assert len(campaign.runs) == 2 * 2 * 3
    assert {r.context for r in campaign.runs} == {32}
    ids = [r.run_id() for r in campaign.runs]
    assert len(set(ids)) == 12
    assert ids == [r.run_id() for r in load_campaign(write(folder, GOOD)).runs]  # same spec, same ids
    assert campaign.launcher == {"kind": "local", "max_parallel": 2}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("seeds = [0]", "seed = [0]"), "[grid] unknown key 'seed'"),
        (lambda s: s.replace("[launcher]", "[launcher]\nparition = \"gpu\""), "[launcher] unknown key 'parition'"),
        (lambda s: s.replace("context = 32", "contxt = 32"), "[train] unknown key 'contxt'"),
        (lambda s: s + "\n[extra]\nx = 1\n", "unknown table [extra]"),
        (lambda s: s.replace("epochs = [1, 2, 4]", "epochs = [1]\ntokens = [1000]"), "both epochs and tokens"),
        (lambda s: s.replace("fractions = [0.25, 1]", "fractions = [0.5]"), "no data fraction 0.5"),
        (lambda s: s.replace('presets = ["tiny-0.1m", "tiny-0.3m"]', 'presets = ["tiny-7m"]'), "unknown preset 'tiny-7m'"),
        (lambda s: s.replace("context = 32", "context = 32\nepochs = 3"), "[train] epochs is already set by [grid]"),
        (lambda s: s.replace('kind = "local"', 'kind = "k8s"'), "kind must be 'local' or 'slurm'"),
        (lambda s: s.replace("max_parallel = 2", 'max_parallel = "two"'), "[launcher] max_parallel: 'two' is not a int"),
        (lambda s: s.replace('corpus = "corpus"', 'corpus = "nowhere"'), "is not a built corpus"),
        (lambda s: s.replace("[grid]", "[grid"), "not a TOML file"),
    ],
)
def test_bad_specs_are_refused_naming_file_table_and_key(folder: Path, edit, message):
    path = write(folder, edit(GOOD))
    with pytest.raises(SpecError) as info:
        load_campaign(path)
    assert str(path) in str(info.value) and message in str(info.value)
