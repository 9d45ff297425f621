"""Set-up on a machine without ComfyUI: the scripts say exactly what to run, offer the fix only where a person
or ATTN_EDIT_GET_COMFYUI=1 asks for it, and get_comfyui.sh clones the tested release."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def bash(command, tmp_path, **env):
    full = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), **env}
    return subprocess.run(["bash", "-c", command], cwd=REPO, env=full, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)


def test_demo_without_comfyui_stops_and_says_what_to_run(tmp_path):
    """No terminal (CI): no question, no clone; exit 2 with the exact commands. Stops before any venv work."""
    missing = tmp_path / "nowhere"
    run = bash("bash scripts/demo.sh", tmp_path, COMFYUI_PATH=str(missing), CI="1")
    assert run.returncode == 2, run.stderr
    for text in (f"No ComfyUI at {missing}", "bash scripts/get_comfyui.sh", "v0.8.0",
                 "git clone --depth 1 --branch v0.8.0", "COMFYUI_PATH=/path/to/ComfyUI bash scripts/demo.sh"):
        assert text in run.stderr, run.stderr
    assert not missing.exists() and "[y/N]" not in run.stderr + run.stdout


def test_the_offer_is_made_only_when_asked_or_at_a_terminal(tmp_path):
    script = "source scripts/comfyui.sh; comfyui_offer && echo found || echo missing"
    run = bash(script, tmp_path, COMFYUI_PATH=str(tmp_path / "nowhere"))  # no terminal, not asked
    assert run.stdout.strip() == "missing" and "[y/N]" not in run.stderr
    fake = tmp_path / "comfy" / "comfy"
    fake.mkdir(parents=True)
    (fake / "model_patcher.py").write_text("")
    run = bash(script, tmp_path, COMFYUI_PATH=str(tmp_path / "comfy"))
    assert run.stdout.strip() == "found"


def test_comfyui_requirements_leave_the_pinned_torch_alone(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("comfyui-frontend-package==1.35.9\ntorch\ntorchsde\ntorchvision\ntorchaudio>=2.0\n"
                   "numpy>=1.25.0\n  torch  \n#non essential dependencies:\nkornia>=0.7.1\n")
    run = bash(f"source scripts/comfyui.sh; comfyui_requirements {req}", tmp_path)
    assert run.stdout.split("\n")[:-1] == ["comfyui-frontend-package==1.35.9", "torchsde", "numpy>=1.25.0",
                                           "#non essential dependencies:", "kornia>=0.7.1"]


def _release_repo(tmp_path) -> Path:
    """A stand-in for ComfyUI's repository: a tagged v0.8.0 with model_patcher.py and a requirements file whose
    only non-torch requirement is already installed (so pip needs no network)."""
    src = tmp_path / "upstream"
    (src / "comfy").mkdir(parents=True)
    (src / "comfy" / "model_patcher.py").write_text("# stand-in\n")
    (src / "requirements.txt").write_text("torch\ntorchaudio\npytest\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "release"],
                ["git", "tag", "v0.8.0"], ["git", "commit", "-q", "--allow-empty", "-m", "after the release"]):
        subprocess.run(cmd, cwd=src, env=env, check=True)
    return src


def test_get_comfyui_clones_the_tested_release_and_installs_its_requirements(tmp_path):
    venv = Path(sys.prefix)
    if not (venv / ".attn-edit-requirements.sha").is_file():
        pytest.skip("not running inside the pack's virtual environment (scripts/env.sh)")
    src, dest = _release_repo(tmp_path), tmp_path / "ComfyUI"
    env = dict(COMFYUI_PATH=str(dest), COMFYUI_REPO_URL=f"file://{src}", ATTN_EDIT_VENV=str(venv))
    stamp = venv / ".attn-edit-requirements.sha"
    kept = {p: p.read_bytes() for p in (stamp, venv / ".attn-edit-comfyui-requirements.txt") if p.is_file()}
    try:
        run = bash("bash scripts/get_comfyui.sh", tmp_path, **env)
        assert "pytest" in (venv / ".attn-edit-comfyui-requirements.txt").read_text()  # the stand-in's own list
    finally:  # the venv is the real one: leave it recorded as the real ComfyUI's
        for path, content in kept.items():
            path.write_bytes(content)
    assert run.returncode == 0, run.stderr
    assert (dest / "comfy" / "model_patcher.py").is_file()
    head = subprocess.run(["git", "describe", "--tags"], cwd=dest, capture_output=True, text=True).stdout.strip()
    assert head == "v0.8.0"  # the release, not the newer commit
    # and the demo now finds it without asking
    run = bash("source scripts/comfyui.sh; comfyui_offer && echo found", tmp_path, **env)
    assert run.stdout.strip() == "found"
    # re-running keeps the checkout
    try:
        assert bash("bash scripts/get_comfyui.sh", tmp_path, **env).returncode == 0
    finally:
        for path, content in kept.items():
            path.write_bytes(content)


def test_get_comfyui_without_network_says_what_to_run(tmp_path):
    dest = tmp_path / "ComfyUI"
    run = bash("bash scripts/get_comfyui.sh", tmp_path, COMFYUI_PATH=str(dest),
               COMFYUI_REPO_URL=f"file://{tmp_path / 'unreachable'}")
    assert run.returncode == 3, run.stderr
    assert "Cannot reach" in run.stderr and "git clone --depth 1 --branch v0.8.0" in run.stderr
    assert not dest.exists()


def _fake_browser_setup(tmp_path, have_version: str, **env):
    """browser_setup with a stand-in ComfyUI (pinning frontend 1.35.9), a stand-in $PY that reports
    `have_version` and logs pip calls, and a PATH where `chromium` exists."""
    comfy = tmp_path / "comfy"
    (comfy / "comfy").mkdir(parents=True)
    (comfy / "comfy" / "model_patcher.py").write_text("")
    (comfy / "requirements.txt").write_text("comfyui-frontend-package==1.35.9\ntorch\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "pip.log"
    py = bin_dir / "py"
    py.write_text(f'#!/bin/bash\nif [ "$1" = "-c" ]; then echo "{have_version}"; else echo "$@" >> {log}; fi\n')
    (bin_dir / "chromium").write_text("#!/bin/bash\n")
    for f in (py, bin_dir / "chromium"):
        f.chmod(0o755)
    run = bash(f"source scripts/comfyui.sh; PY={py}; source scripts/browser.sh; browser_setup", tmp_path,
               COMFYUI_PATH=str(comfy), PATH=f"{bin_dir}:{os.environ['PATH']}", **env)
    return run, (log.read_text() if log.exists() else "")


def test_browser_setup_installs_the_frontend_comfyui_pins_and_only_then(tmp_path):
    run, pip = _fake_browser_setup(tmp_path, "1.30.0")
    assert run.returncode == 0 and pip.strip() == "-m pip install -q comfyui-frontend-package==1.35.9", run.stderr
    run, pip = _fake_browser_setup(tmp_path / "again", "1.35.9")
    assert run.returncode == 0 and pip == "" and run.stderr == ""
    run, pip = _fake_browser_setup(tmp_path / "opted_out", "1.30.0", ATTN_EDIT_NO_BROWSER="1")
    assert run.returncode == 0 and pip == ""


def _names(requirements: str) -> set[str]:
    """Distribution names of a requirements or constraints file, normalised as pip compares them."""
    import re

    names = set()
    for line in requirements.splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ ]", line)[0]).lower())
    return names


def test_constraints_pin_every_requirement_of_the_test_environment():
    """A fresh machine gets the versions CI tested: every package the environment asks for has an exact pin,
    comfy-kitchen (which ComfyUI's requirements bring to every user) included."""
    constraints = (REPO / "constraints.txt").read_text()
    pinned = {n for n in _names(constraints)}
    assert all("==" in line for line in constraints.splitlines() if line and not line.startswith("#"))
    wanted = _names((REPO / "requirements-dev.txt").read_text()) | _names((REPO / "requirements.txt").read_text())
    comfy_requirements = Path(os.environ.get("COMFYUI_PATH", "~/ComfyUI")).expanduser() / "requirements.txt"
    if comfy_requirements.is_file():
        wanted |= _names(comfy_requirements.read_text()) - {"torch", "torchvision", "torchaudio"}
    assert wanted - pinned == set()
    assert "comfy-kitchen" in pinned


def test_the_environment_the_tests_run_in_has_the_pinned_versions():
    if not (Path(sys.prefix) / ".attn-edit-requirements.sha").is_file():
        pytest.skip("not running inside the pack's virtual environment (scripts/env.sh)")
    import importlib.metadata as metadata

    drift = []
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # pinned for ComfyUI's requirements; absent where no ComfyUI was found
        if have.split("+")[0] != version.strip():
            drift.append(f"{name} {have} (constraints.txt: {version})")
    assert not drift, drift
