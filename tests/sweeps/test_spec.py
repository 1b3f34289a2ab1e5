"""Grid spec files: expansion into run specs with stable ids, and every kind of bad spec refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.shards import BuildConfig, build_corpus
from corpus.sources import user_files
from sweeps.settings import LauncherSettings
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
    assert campaign.launcher == LauncherSettings(kind="local", max_parallel=2)


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
        (lambda s: s.replace('kind = "local"', 'kind = "k8s"'), "kind must be one of 'local', 'slurm', 'debug'"),
        (lambda s: s.replace("max_parallel = 2", 'max_parallel = "two"'), "[launcher] max_parallel: 'two' is not a int"),
        (lambda s: s.replace('corpus = "corpus"', 'corpus = "nowhere"'), "is not a built corpus"),
        (lambda s: s.replace("[grid]", "[grid"), "not a TOML file"),
        (lambda s: s.replace("context = 32", 'context = "32"'), "[train] context: '32' is not a int"),
        (lambda s: s.replace("context = 32", 'context = 32\nlr = "fast"'), "[train] lr: 'fast' is not a float"),
        (lambda s: s.replace("context = 32", 'context = 32\nprecision = "fp8"'), "[train] precision must be one of"),
        (lambda s: s.replace("seeds = [0]", 'seeds = [0]\ndata_mixes = ["abc", "abc+bach"]'),
         "[grid] data_mixes names 2 data mixes but [campaign] gives one corpus"),
        (lambda s: s.replace('corpus = "corpus"', 'corpora = {abc = "corpus"}').replace(
            "seeds = [0]", 'seeds = [0]\ndata_mixes = ["abc", "abc+bach"]'), "no corpus for data mix 'abc+bach'"),
        (lambda s: s.replace('corpus = "corpus"', 'corpus = "corpus"\ncorpora = {abc = "corpus"}'),
         "gives both corpus and corpora"),
        # Numbers that used to crash, launch forever or fail every run are refused before anything starts.
        (lambda s: s.replace("epochs = [1, 2, 4]", "epochs = [1, inf]"), "epochs must be a positive finite number"),
        (lambda s: s.replace("epochs = [1, 2, 4]", "epochs = [1, 1e12]"), "epochs 1e+12 is beyond 10000"),
        (lambda s: s.replace("batch_tokens = 512", "batch_tokens = 0"), "batch_tokens must be a positive finite"),
        (lambda s: s.replace("max_parallel = 2", "max_parallel = 0"), "[launcher] max_parallel must be at least 1"),
        (lambda s: s.replace("max_parallel = 2", "max_parallel = 2\ntimeout_min = -5"),
         "[launcher] timeout_min must be at least 1"),
        (lambda s: s.replace('name = "demo"', 'name = " "'), "[campaign] name is empty"),
        (lambda s: s.replace("seeds = [0]", f"seeds = {list(range(1000))}\ndata_mixes = {[str(i) for i in range(100)]}"),
         "[grid] means 1,200,000 runs (2 presets x 2 fractions x 3 epochs x 1000 seeds x 100 data_mixes)"),
    ],
)
def test_bad_specs_are_refused_naming_file_table_and_key(folder: Path, edit, message):
    path = write(folder, edit(GOOD))
    with pytest.raises(SpecError) as info:
        load_campaign(path)
    assert str(path) in str(info.value) and message in str(info.value)


PLAN = """
[plan]
target_flops = 1e12
budget_flops = 5e12
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[plan]\nbudget_flops = 1e12\n", "[plan] needs target_flops"),
        (PLAN + "tolerance = 0.5\n", "[plan] tolerance"),
        (PLAN + "laws = ['chinchilla', 'kaplan']\n", "unknown law 'kaplan'"),
        (PLAN + "points = 'all'\n", "[plan] points"),
        (PLAN + "budget = 3\n", "[plan] unknown key 'budget'"),
        (PLAN + "presets = ['tiny-9m']\n", "tiny-9m"),
        ("[lr_search]\ntrials = 2\nlow = 0.1\nhigh = 0.01\n", "[lr_search] needs 0 < low < high"),
        ("[lr_search]\nsteps = 2\n", "[lr_search] unknown key 'steps'"),
        (PLAN + "unique_tokens = -5\n", "[plan] unique_tokens must be positive"),
        (PLAN + "n_convention = 'total'\n", "[plan] n_convention must be one of non_embedding, with_embeddings"),
        (PLAN + "law_files = ['missing_law.py']\n", "[plan] law_files:"),  # refused before anything registers
        (PLAN + "laws = ['my_law']\n", "unknown law 'my_law'"),
    ],
)
def test_campaign_tables_are_checked_by_key(folder: Path, extra: str, message: str):
    path = folder / "plan.toml"
    path.write_text(GOOD + extra)
    with pytest.raises(SpecError) as err:
        load_campaign(path)
    assert str(path) in str(err.value) and message in str(err.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace('presets = ["tiny-0.1m", "tiny-0.3m"]', 'presets = ["tiny-0.1m"]'),
         "[plan] needs runs of at least two model sizes"),
        (lambda s: s.replace("fractions = [0.25, 1]", "fractions = [1]").replace("epochs = [1, 2, 4]", "epochs = [1, 2]"),
         "[plan] laws: sms has 11 parameters but the grid gives 4 loss points"),
    ],
)
def test_a_campaign_that_could_not_fit_its_laws_is_refused_before_it_trains(folder: Path, edit, message):  # type: ignore[no-untyped-def]
    path = folder / "unfittable.toml"
    path.write_text(edit(GOOD) + PLAN)
    with pytest.raises(SpecError) as err:
        load_campaign(path)
    assert str(path) in str(err.value) and message in str(err.value)
    every_step = edit(GOOD).replace("batch_tokens = 512", "batch_tokens = 512\neval_every_tokens = 512")
    path.write_text(every_step + PLAN + "laws = ['chinchilla']\npoints = 'curve'\n")  # every evaluation: enough
    if "two model sizes" not in message:
        assert load_campaign(path).plan is not None


def test_each_data_mix_trains_on_its_own_corpus_and_a_campaign_fits_one_mix(folder: Path):
    import shutil

    if not (folder / "corpus-b").exists():
        shutil.copytree(folder / "corpus", folder / "corpus-b")
    text = GOOD.replace('corpus = "corpus"', 'corpora = {abc = "corpus", "abc+bach" = "corpus-b"}').replace(
        "seeds = [0]", 'seeds = [0]\ndata_mixes = ["abc", "abc+bach"]')
    campaign = load_campaign(write(folder, text))
    assert len(campaign.runs) == 2 * 2 * 3 * 2
    by_mix = {run.data_mix: campaign.corpus_for(run) for run in campaign.runs}
    assert by_mix == {"abc": (folder / "corpus").resolve(), "abc+bach": (folder / "corpus-b").resolve()}
    path = folder / "two-mix-plan.toml"
    path.write_text(text + PLAN)
    with pytest.raises(SpecError, match="a campaign fits its laws on one data mix"):
        load_campaign(path)


def test_plan_defaults_are_filled_in(folder: Path):
    path = folder / "plan-ok.toml"
    path.write_text(GOOD + PLAN)
    plan = load_campaign(path).plan
    assert plan is not None and plan.tolerance == 2.0 and plan.presets == ("tiny-0.1m", "tiny-0.3m")
    assert plan.laws == ("chinchilla", "data_constrained", "dprime", "nd", "sms")


def test_a_campaign_names_its_n_convention_and_its_own_laws(folder: Path, monkeypatch: pytest.MonkeyPatch):
    import shutil

    import lawfit.laws.base
    import lawfit.user_law

    # Loading the spec registers its law: in a registry of this test's own, so other tests see the built-ins only.
    monkeypatch.setattr(lawfit.laws.base, "_REGISTRY", dict(lawfit.laws.base._REGISTRY))
    monkeypatch.setattr(lawfit.user_law, "_LOADED", {})

    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "my_law.py"
    shutil.copy(example, folder / "my_law.py")
    path = folder / "own-law.toml"
    path.write_text(GOOD + PLAN + "n_convention = 'with_embeddings'\nlaw_files = ['my_law.py']\n"
                    "laws = ['chinchilla', 'one_exponent_dprime']\n")
    plan = load_campaign(path).plan
    assert plan is not None and plan.n_convention == "with_embeddings"
    assert plan.laws == ("chinchilla", "one_exponent_dprime")


def test_sweep_commands_refuse_a_bad_spec_with_exit_2_and_no_traceback(folder: Path):
    import subprocess
    import sys

    path = folder / "bad-cli.toml"
    path.write_text(GOOD + PLAN + "budget = 3\n")
    for command in (["sweep", "launch"], ["sweep", "status"], ["campaign", "run"]):
        proc = subprocess.run([sys.executable, "-m", "smslab", *command, str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "unknown key 'budget'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_slurm_launcher_writes_every_setting_into_the_batch_script(folder: Path):
    from sweeps.launch import make_executor

    launcher = """[launcher]
kind = "slurm"
partition = "gpu"
account = "music"
qos = "high"
gpus_per_node = 4
cpus_per_task = 8
mem_gb = 64
timeout_min = 90
max_num_timeout = 5
array_parallelism = 16
setup = ["module load cuda/12.4", "source .venv/bin/activate"]
"""
    campaign = load_campaign(write(folder, GOOD.replace('[launcher]\nkind = "local"\nmax_parallel = 2', launcher)))
    executor = make_executor(campaign)
    script = executor._executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=music", "#SBATCH --qos=high",
                 "#SBATCH --gpus-per-node=4", "#SBATCH --ntasks-per-node=4", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --mem=64GB", "#SBATCH --time=90", "#SBATCH --signal=USR2@", "module load cuda/12.4",
                 "source .venv/bin/activate"):
        assert line in script, line
    assert executor._executor.max_num_timeout == 5
    # map_array: one array of 40 runs, at most 16 running at once.
    from submitit.slurm.slurm import _make_sbatch_string

    array = _make_sbatch_string(command="x", folder=campaign.folder, map_count=40, **executor._executor.parameters)
    assert "#SBATCH --array=0-39%16" in array


def test_one_launcher_per_campaign_and_status_needs_no_corpus(folder: Path, tmp_path: Path):
    import subprocess
    import sys

    from sweeps.runs import campaign_lock

    path = write(folder, GOOD)
    campaign = load_campaign(path)
    with campaign_lock(campaign):
        proc = subprocess.run([sys.executable, "-m", "smslab", "sweep", "launch", str(path)],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "another smslab process" in proc.stderr and "Traceback" not in proc.stderr
    assert not (campaign.folder / "jobs.json").exists()  # nothing was launched
    # The runs' state is read from their folders and MLflow: the corpus may have moved away since.
    moved = tmp_path / "spec.toml"
    moved.write_text(GOOD.replace('corpus = "corpus"', 'corpus = "gone"').replace(
        '[campaign]', f'[campaign]\nfolder = "{campaign.folder}"', 1))
    status = subprocess.run([sys.executable, "-m", "smslab", "sweep", "status", str(moved)],
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr[-2000:]
    assert "runs: 12; 12 not started" in status.stdout
