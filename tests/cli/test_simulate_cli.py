"""``cryoensemble simulate`` and ``cryoensemble demo`` through the command line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cryoensemble.cli.main import app
from cryoensemble.io import read_particles, read_stack

runner = CliRunner()
SMALL = [
    "--n-particles",
    "6",
    "--box-size",
    "32",
    "--pixel-size",
    "4",
    "--selection",
    "heavy",
    "--batch-size",
    "4",
    "--quiet",
    "--no-gallery",
]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *words):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    for w in words:
        assert w in result.output, (w, result.output)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A small noise-free dataset: folder with particles.star and 2 stacks."""
    out = tmp_path_factory.mktemp("ds") / "sim"
    r = run("simulate", *SMALL, "--noise", "none", "--stack-size", "4", "--out", out)
    assert r.exit_code == 0, r.output
    return out


def test_help_documents_every_option():
    import typer.main

    command = typer.main.get_command(app).commands["simulate"]
    for param in command.params:
        if param.name in ("help",):
            continue
        assert getattr(param, "help", None), f"option {param.name} has no help"
    text = run("simulate", "--help").output
    for opt in [
        "--structure",
        "--weights",
        "--n-particles",
        "--box-size",
        "--pixel-size",
        "--snr",
        "--noise",
        "--pad-factor",
        "--no-ctf",
        "--seed",
        "--from-star",
        "--config",
        "--out",
        "--overwrite",
        "--dose",
    ]:
        assert opt in text


def test_outputs_and_provenance(dataset):
    names = leftovers(dataset)
    for n in [
        "particles.star",
        "particles_00000.mrcs",
        "particles_00001.mrcs",
        "config.yaml",
        "provenance.json",
        "summary.json",
        "ground_truth.csv",
    ]:
        assert n in names
    assert not [n for n in names if n.startswith(".")]
    table = read_particles(dataset / "particles.star")
    assert table.particles.rlnImageName.iloc[5] == "000002@particles_00001.mrcs"
    assert "cryoensembleStructureIndex" in table.particles
    import json

    prov = json.loads((dataset / "provenance.json").read_text())
    assert prov["seed"] == 0 and prov["config"]["n_particles"] == 6 and "jax" in prov["versions"]


def test_refuses_to_overwrite(dataset):
    before = (dataset / "particles.star").read_bytes()
    r = run("simulate", *SMALL, "--out", dataset)
    assert_user_error(r, "already exists", "--overwrite")
    assert (dataset / "particles.star").read_bytes() == before


def test_overwrite_and_config_file_equivalent_to_flags(tmp_path):
    a = tmp_path / "a"
    r = run("simulate", *SMALL, "--snr", "0.3", "--seed", "5", "--out", a)
    assert r.exit_code == 0, r.output
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'n_particles = 6\nbox_size = 32\npixel_size = 4.0\nselection = "heavy"\nbatch_size = 4\n'
        "snr = 0.3\nseed = 5\ngallery = false\n"
    )
    b = tmp_path / "b"
    (b).mkdir()
    (b / "junk").write_text("x")
    r = run("simulate", "--config", cfg, "--quiet", "--out", b, "--overwrite")
    assert r.exit_code == 0, r.output
    assert not (b / "junk").exists()
    strip = lambda t: re.sub(r"^# Created by.*$", "", t, flags=re.M)  # noqa: E731
    assert strip((a / "particles.star").read_text()) == strip((b / "particles.star").read_text())
    assert (a / "particles_00000.mrcs").read_bytes() == (b / "particles_00000.mrcs").read_bytes()
    # the written effective config reproduces the dataset too
    c = tmp_path / "c"
    r = run("simulate", "--config", a / "config.yaml", "--quiet", "--out", c)
    assert r.exit_code == 0, r.output
    assert (a / "particles_00000.mrcs").read_bytes() == (c / "particles_00000.mrcs").read_bytes()


def test_bad_config_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("n_particles: -3\nsnrr: 1\n")
    r = run("simulate", "--config", cfg, "--out", tmp_path / "o")
    assert_user_error(r, "c.yaml", "n_particles", "snrr")
    assert leftovers(tmp_path) == ["c.yaml"]


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_no_partial_output_on_error_or_interrupt(tmp_path, monkeypatch, exc):
    from cryoensemble.io import MrcStackWriter

    original = MrcStackWriter.append
    calls = {"n": 0}

    def failing(self, images):
        calls["n"] += 1
        if calls["n"] == 2:
            raise exc
        return original(self, images)

    monkeypatch.setattr(MrcStackWriter, "append", failing)
    r = run("simulate", *SMALL, "--noise", "none", "--out", tmp_path / "out")
    assert r.exit_code != 0
    assert leftovers(tmp_path) == []
    if isinstance(exc, KeyboardInterrupt):
        assert r.exit_code == 130


def test_from_star_and_size_mismatch(dataset, tmp_path):
    out = tmp_path / "fs"
    r = run(
        "simulate",
        "--from-star",
        dataset / "particles.star",
        "--noise",
        "none",
        "--selection",
        "heavy",
        "--quiet",
        "--out",
        out,
    )
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(
        read_stack(out / "particles_00000.mrcs")[:4],
        read_stack(dataset / "particles_00000.mrcs"),
        rtol=1e-5,
        atol=1e-8,
    )
    r = run(
        "simulate",
        "--from-star",
        dataset / "particles.star",
        "--box-size",
        "64",
        "--out",
        tmp_path / "x",
    )
    assert_user_error(r, "box_size", "64", "particles.star")
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------ bad --from-star files
def _copy_dataset(dataset: Path, dest: Path) -> Path:
    shutil.copytree(dataset, dest)
    return dest / "particles.star"


def _edit(star: Path, fn) -> None:
    star.write_text(fn(star.read_text()))


def _drop_column(text: str, column: str) -> str:
    lines = text.splitlines()
    head = [i for i, ln in enumerate(lines) if ln.startswith("_rln") or ln.startswith("_cryo")]
    # column index within the particles loop
    part = [
        i
        for i in head
        if i > [j for j, ln in enumerate(lines) if ln.startswith("data_particles")][0]
    ]
    names = [lines[i].split()[0] for i in part]
    k = names.index(column)
    out = []
    for i, ln in enumerate(lines):
        if i == part[k]:
            continue
        fields = ln.split()
        if i > part[-1] and len(fields) == len(names):
            del fields[k]
            ln = "\t".join(fields)
        out.append(ln)
    return "\n".join(out) + "\n"


def _last_rows(text: str, fn) -> str:
    lines = text.rstrip("\n").splitlines()
    lines[-1] = fn(lines[-1])
    return "\n".join(lines) + "\n"


BAD_CASES = {
    "missing_column": (lambda t: _drop_column(t, "_rlnDefocusU"), ["rlnDefocusU"]),
    "unknown_optics_group": (
        lambda t: _last_rows(t, lambda ln: re.sub(r"\t1\t0\t", "\t7\t0\t", ln)),
        ["optics group", "7"],
    ),
    "index_past_end": (
        lambda t: _last_rows(
            t, lambda ln: ln.replace("000002@particles_00001", "000009@particles_00001")
        ),
        ["000009", "beyond the end"],
    ),
    "stack_missing": (
        lambda t: _last_rows(t, lambda ln: ln.replace("particles_00001.mrcs", "nothere.mrcs")),
        ["nothere.mrcs", "not found"],
    ),
    "non_numeric": (
        lambda t: _last_rows(t, lambda ln: re.sub(r"^(\S+\t)\S+", r"\1abc", ln)),
        ["rlnAngleRot", "abc"],
    ),
    "empty_file": (lambda t: "", ["empty"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_from_star_inputs(dataset, tmp_path, case):
    star = _copy_dataset(dataset, tmp_path / "in")
    edit, words = BAD_CASES[case]
    _edit(star, edit)
    r = run("simulate", "--from-star", star, "--check-stacks", "--quiet", "--out", tmp_path / "out")
    assert_user_error(r, "particles.star" if case != "index_past_end" else "particles", *words)
    assert r.exit_code == 1
    assert not (tmp_path / "out").exists()


def test_bad_from_star_wrong_image_size(dataset, tmp_path):
    star = _copy_dataset(dataset, tmp_path / "in")
    _edit(star, lambda t: t.replace("\t4.0\t32\t2", "\t4.0\t48\t2"))
    r = run("simulate", "--from-star", star, "--check-stacks", "--quiet", "--out", tmp_path / "out")
    assert_user_error(r, "particles_0000", "32 x 32", "48")
    assert not (tmp_path / "out").exists()


def test_from_star_stacks_are_a_template_checked_on_request(dataset, tmp_path):
    """The stacks of a --from-star file are not needed (default); --check-stacks validates them
    and its errors say how to go without."""
    template = tmp_path / "template"
    template.mkdir()
    shutil.copy(dataset / "particles.star", template / "particles.star")
    args = ["simulate", "--from-star", template / "particles.star", "--noise", "none", "--quiet"]
    r = run(*args, "--selection", "heavy", "--no-gallery", "--out", tmp_path / "ok")
    assert r.exit_code == 0, r.output
    assert len(read_particles(tmp_path / "ok" / "particles.star")) == 6
    r = run(*args, "--check-stacks", "--out", tmp_path / "checked")
    assert_user_error(r, "particles_00000.mrcs", "not found", "--no-check-stacks")
    assert r.exit_code == 1 and not (tmp_path / "checked").exists()
    r = run(*args, "--no-check-stacks", "--selection", "heavy", "--out", tmp_path / "unchecked")
    assert r.exit_code == 0, r.output


def test_nuisance_flags(tmp_path):
    """The real-data nuisances are options derived from the configuration, recorded in
    config.yaml, the STAR file and the ground truth."""
    import yaml

    text = run("simulate", "--help").output
    for opt in ["--pose-error-deg", "--shift-error-A", "--amplitude-spread", "--normalize"]:
        assert opt in text
    out = tmp_path / "n"
    flags = ["--pose-error-deg", "2", "--shift-error-A", "0.5", "--amplitude-spread", "0.2"]
    flags += ["--ice-fraction", "0.3", "--micrograph-noise-spread", "0.2"]
    flags += ["--particles-per-micrograph", "3", "--envelope-b-factor", "50"]
    r = run("simulate", *SMALL, *flags, "--normalize", "--invert-contrast", "--out", out)
    assert r.exit_code == 0, r.output
    assert "nuisances:" in r.output and "ice_fraction=0.3" in r.output
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["pose_error_deg"] == 2.0 and cfg["shift_error_A"] == 0.5
    assert cfg["normalize"] is True and cfg["invert_contrast"] is True
    assert cfg["ice_fraction"] == 0.3 and cfg["envelope_b_factor"] == 50.0
    p = read_particles(out / "particles.star").particles
    assert p.rlnMicrographName.tolist()[:4] == ["mic_00001.mrc"] * 3 + ["mic_00002.mrc"]
    assert "cryoensembleTrueAnglePsi" in p and "cryoensembleAmplitude" in p
    r = run("simulate", *SMALL, "--ice-fraction", "0.3", "--noise", "none", "--out", tmp_path / "x")
    assert_user_error(r, "ice_fraction", "--ice-fraction", "gaussian")


def test_missing_structure_is_a_user_error(tmp_path):
    r = run("simulate", "--structure", tmp_path / "none.pdb", "--out", tmp_path / "o")
    assert_user_error(r, "none.pdb")
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------ process-level checks
def test_cli_process_uses_all_cpu_devices_and_no_jax_at_import():
    code = (
        "import sys, cryoensemble.cli.main\n"
        "assert 'jax' not in sys.modules, 'jax imported by cli.main'\n"
        "import jax, os\n"
        "print(jax.device_count(), os.cpu_count())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    devices, cpus = map(int, out.stdout.split())
    assert devices == cpus


@pytest.mark.slow
def test_no_arguments_uses_the_bundled_example(tmp_path):
    exe = Path(sys.executable).with_name("cryoensemble")
    out = subprocess.run(
        [str(exe), "simulate", "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    (folder,) = list(tmp_path.glob("cryoensemble_simulation_*"))
    table = read_particles(folder / "particles.star")
    assert len(table) == 1000 and int(table.optics.rlnImageSize[0]) == 128
    assert (folder / "gallery.png").is_file()
    assert "particles.star" in out.stdout


@pytest.mark.slow
def test_demo(tmp_path):
    exe = Path(sys.executable).with_name("cryoensemble")
    out = subprocess.run(
        [str(exe), "demo", "--out", "demo_output", "--overwrite", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "demo_output" in out.stdout and "gallery" in out.stdout
    assert (tmp_path / "demo_output" / "simulation" / "particles.star").is_file()
