"""The built wheel works without the checkout: installed into a fresh virtual environment and run
from another folder, its console scripts find the configs shipped inside the package.

The fresh environment reuses this environment's packages (torch, Hydra, ...) through a ``.pth``
line, so nothing is downloaded; the project itself comes from the wheel alone.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def sh(*args: str | Path, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    p = subprocess.run(
        [str(a) for a in args], cwd=cwd, input=stdin, capture_output=True, text=True, env=env, timeout=600
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with the project's wheel installed; returns its bin folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a clean copy: no build/ left over from an earlier build of the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("seq2seq", "configs"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", source,
       cwd=tmp)  # fmt: skip
    (wheel,) = (tmp / "dist").glob("seq2seq_attention-*.whl")
    venv = tmp / "venv"
    sh(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    python = venv / "bin" / "python"
    sh(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp)
    purelib = sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp).stdout.strip()
    (Path(purelib) / "reuse_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv / "bin"


def test_installed_wheel_runs_from_another_folder(installed: Path, toy_root: Path, tmp_path: Path) -> None:
    (wheel,) = (installed.parent.parent / "dist").glob("seq2seq_attention-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    configs = sorted(p.relative_to(ROOT / "configs").as_posix() for p in (ROOT / "configs").rglob("*.yaml"))
    assert len(configs) > 20 and "model/attention/dot.yaml" in configs
    for config in configs:  # every config group folder is listed in pyproject.toml
        assert f"seq2seq/configs/{config}" in names, config
    assert not [n for n in names if n.startswith(("tests/", "configs/", "scripts/"))]
    assert "seq2seq/static/index.html" in names  # seq2seq-serve's page

    where = sh(installed / "python", "-c", "import seq2seq; print(seq2seq.__file__)", cwd=tmp_path).stdout
    assert str(installed.parent) in where and str(ROOT) not in where  # the wheel, not the checkout

    tiny = ["trainer.max_steps=2", "trainer.progress=false", "model.embed_size=16", "model.hidden_size=32"]
    sh(installed / "seq2seq-train", "data=toy", f"data.root={toy_root}", *tiny, "hydra.run.dir=run", cwd=tmp_path)
    assert (tmp_path / "run" / "best.pt").is_file() and (tmp_path / "run" / "train.log").is_file()
    out = sh(installed / "seq2seq-translate", "checkpoint=run/best.pt", cwd=tmp_path, stdin="Tom chase Jerry\n\n")
    assert len(out.stdout.split("\n")) == 3 and out.stdout.split("\n")[1] == ""  # one line out per line in
    help_text = sh(installed / "seq2seq-eval", "--help", cwd=tmp_path).stdout
    assert "checkpoint=???" in help_text and "model/attention" not in help_text

    made = sh(installed / "python", "-m", "seq2seq.data.toy", "--out", "toy", "--train", "30", "--valid", "5",
              "--test", "5", cwd=tmp_path)  # fmt: skip
    assert "train 30, valid 5, test 5 pairs" in made.stdout
    assert len((tmp_path / "toy" / "train.zh").read_text(encoding="utf-8").splitlines()) == 30
