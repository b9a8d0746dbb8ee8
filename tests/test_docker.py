"""The replication image, checked without a Docker engine: the Dockerfile builds Caffe through the
same script as `make caffe`, with CUDA, from a base that can be swapped, in an order that keeps
the Caffe layer cached across code changes, and runs as a non-root user. `make docker-test`
builds and runs the image for real (docs/docker.md)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent      # no pycount import: the package may move
DOCKER_SCRIPTS = ["tools/docker.sh", "tools/docker_base.sh", "tools/docker_engine.sh", "tools/docker_host.sh"]


def dockerfile():
    return (ROOT / "Dockerfile").read_text()


def instructions():
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"^\s*#.*\n", "", dockerfile(), flags=re.M)
    text = re.sub(r"\\\n", " ", text)
    return [(m.group(1).upper(), m.group(2)) for m in re.finditer(r"^(\w+)\s+(.*)$", text, re.M)]


def caffe_run_index(ins):
    runs = [i for i, (k, a) in enumerate(ins) if k == "RUN" and "tools/build_caffe.sh" in a]
    assert len(runs) == 1, "exactly one RUN builds Caffe"
    return runs[0]


def test_dockerfile_builds_caffe_with_the_makefiles_script():
    docker = dockerfile()
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^caffe:.*\n\t.*tools/build_caffe\.sh", make, re.M)
    assert re.search(r"^RUN .*\n(.*\\\n)*.*tools/build_caffe\.sh", docker, re.M), \
        "the image must build Caffe with tools/build_caffe.sh"
    assert re.search(r"^\s*WITH_CUDA=1", docker, re.M)
    archs = re.search(r'CUDA_ARCH_BIN="([0-9 ]+)"', docker).group(1).split()
    assert min(int(a) for a in archs) == 75                    # sm_75 (Turing) upward
    assert "tools/setup_venv.sh" in docker and "tools/setup_venv.sh" in make


def test_the_base_is_an_argument_defaulting_to_the_public_python_image():
    ins = instructions()
    assert ins[0] == ("ARG", "BASE=python:3.11-slim-bookworm")
    assert ins[1] == ("FROM", "${BASE}")
    assert not re.search(r"^#\s*syntax\s*=", dockerfile(), re.M), \
        "a syntax line makes BuildKit pull the frontend from a registry"
    # the same Python on either base: Debian's, not the python image's /usr/local one
    env = " ".join(a for k, a in ins if k == "ENV")
    assert "PYTHON=/usr/bin/python3" in env
    assert any(k == "RUN" and re.search(r"install .*\bpython3\b.*\bpython3-venv\b", a) for k, a in ins)


def test_image_runs_as_a_non_root_user():
    users = re.findall(r"^USER\s+(\S+)", dockerfile(), re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_a_code_change_does_not_rebuild_caffe():
    ins = instructions()
    at = caffe_run_index(ins)
    before = [a for k, a in ins[:at] if k in ("COPY", "ADD")]
    after = [a for k, a in ins[at:] if k in ("COPY", "ADD")]
    assert ". ." in after and not any(re.match(r"\.\s", a) for a in before), \
        "the whole tree is copied only after the Caffe build"
    copied = " ".join(before).split()
    for want in ("requirements.txt", "tools/setup_venv.sh", "tools/build_caffe.sh",
                 "tools/cuda_toolchain.sh", "tools/caffe-patches/"):
        assert want in copied, f"{want} must be in the image before the Caffe build"
    # whatever build_caffe.sh runs from tools/ is copied before it, too
    script = (ROOT / "tools" / "build_caffe.sh").read_text()
    for used in sorted(set(re.findall(r'\$here"?/([A-Za-z][\w.-]*)', script))):
        assert any(c.startswith(f"tools/{used}") for c in copied), f"tools/{used} is read by build_caffe.sh"


def test_the_browser_make_test_wants_is_in_the_image_after_caffe_before_the_code():
    # make test runs tools/setup_browser.sh, which only root can satisfy; the image's user is not
    assert "tools/setup_browser.sh" in (ROOT / "Makefile").read_text()
    ins = instructions()
    at = [i for i, (k, a) in enumerate(ins) if k == "RUN" and re.search(r"apt-get install .*\bchromium\b", a)]
    code = ins.index(("COPY", ". ."))
    assert len(at) == 1 and caffe_run_index(ins) < at[0] < code


def test_downloads_use_the_host_settings_secret_and_nothing_persists():
    for k, a in instructions():
        if k == "RUN" and re.search(r"apt-get|setup_venv|build_caffe|pip install", a):
            assert "--mount=type=secret,id=host-settings" in a and "--mount=type=tmpfs,target=/run/host" in a
            assert "tools/docker_host.sh" in a
        if k == "RUN" and re.search(r"apt-get|build_caffe", a):
            assert "rm -rf /var/lib/apt/lists/*" in a       # list files are named after the mirror
        assert not (k in ("ENV", "ARG") and re.search(r"PIP_(INDEX|EXTRA|FIND|CERT)|APT_CONFIG|_proxy", a, re.I))
    for name in ["Dockerfile", ".dockerignore"] + DOCKER_SCRIPTS:
        assert not re.search(r"https?://", (ROOT / name).read_text()), f"{name} names a host"


def test_dockerignore_keeps_local_state_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "runs", "data", "weights/*.caffemodel"):
        assert path in ignored


def test_make_targets_call_the_scripts_and_the_scripts_only_use_make_targets():
    make = (ROOT / "Makefile").read_text()
    for target, call in (("docker", "tools/docker.sh build"), ("docker-base", "tools/docker_base.sh"),
                         ("docker-test", "tools/docker.sh test")):
        assert re.search(rf"^{target}:.*\n\t.*{re.escape(call)}", make, re.M), target
    for name in DOCKER_SCRIPTS:
        text = (ROOT / name).read_text()
        assert not re.search(r"-m pycount|tools/\w+\.py|from pycount|import pycount", text), \
            f"{name} must not depend on the package layout"
        subprocess.run(["bash", "-n", str(ROOT / name)], check=True)
    test = (ROOT / "tools/docker.sh").read_text()
    assert re.search(r'run --rm --network=none "\$image" \\\n.*make test', test)
    assert re.search(r'run --rm --network=none --user "\$uid:\$gid" .*\\\n.*"\$image" make audit', test)


def test_the_inputs_hash_covers_the_caffe_layer():
    out = subprocess.run([str(ROOT / "tools" / "docker.sh"), "inputs"], capture_output=True, text=True)
    if out.returncode and "sha256sum" in out.stderr:
        pytest.skip("no sha256sum")
    assert re.fullmatch(r"[0-9a-f]{16}\n", out.stdout)


def test_ci_builds_the_image_exactly_when_its_inputs_differ_from_the_last_tested(tmp_path):
    """`tools/docker.sh ci` (last step of .ci/run) compares the inputs hash with the record the
    last passing `make docker-test` wrote; PYCOUNT_CI_DOCKER=dry says what it would do."""
    import shutil
    for name in ("Dockerfile", ".dockerignore", "requirements.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "tools", tmp_path / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    record = tmp_path / "tools" / "docker-tested.txt"
    record.unlink(missing_ok=True)
    script = tmp_path / "tools" / "docker.sh"

    def ci():
        out = subprocess.run([str(script), "ci"], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "PYCOUNT_CI_DOCKER": "dry"})
        assert out.returncode == 0, out.stderr
        return out.stderr

    assert "built and tested, since no image was recorded as tested" in ci()
    now = subprocess.run([str(script), "inputs"], capture_output=True, text=True, check=True).stdout.strip()
    record.write_text(f"inputs {now}\ntested 2026-12-02T16:00Z on host, 900 s\nimage 0123456789ab, 3.80 GB\n")
    out = ci()
    assert "not built" in out and f"image inputs {now} were built and tested: 2026-12-02T16:00Z" in out
    with open(tmp_path / "tools" / "caffe-patches" / "99-new.patch", "w") as f:
        f.write("--- a\n+++ b\n")
    out = ci()
    assert f"differ from the last tested image's ({now}, tools/docker-tested.txt)" in out
    assert "not built" not in out


def test_runs_made_in_the_image_name_the_commit_it_was_built_from(tmp_path, monkeypatch):
    """The image has no .git: tools/docker.sh passes the tree's commit as PYCOUNT_COMMIT, which
    provenance.commit() (train.json, the audit) falls back to outside a checkout."""
    assert re.search(r'--build-arg "PYCOUNT_COMMIT=\$\(commit\)"', (ROOT / "tools/docker.sh").read_text())
    ins = instructions()
    code = ins.index(("COPY", ". ."))
    assert ("ARG", "PYCOUNT_COMMIT=unknown") in ins[caffe_run_index(ins):code]
    assert ("ENV", "PYCOUNT_COMMIT=${PYCOUNT_COMMIT}") in ins[caffe_run_index(ins):code]
    from pycount.util import provenance
    here = provenance.commit()
    assert re.fullmatch(r"[0-9a-f]{12}(\+changes)?|unknown", here)
    monkeypatch.setattr(provenance, "_ROOT", tmp_path)            # not a checkout
    monkeypatch.delenv("PYCOUNT_COMMIT", raising=False)
    assert provenance.commit() == "unknown"
    monkeypatch.setenv("PYCOUNT_COMMIT", "0123456789ab")
    assert provenance.commit() == "0123456789ab"


@pytest.mark.skipif(shutil.which("git") is None, reason="makes git repositories: needs git "
                    "(the image has none)")
def test_the_commit_is_not_that_of_a_repository_pycount_is_installed_in(tmp_path, monkeypatch):
    """Installed inside another project's git repository: PYCOUNT_COMMIT, not that repository's
    commit; and tools/docker.sh's commit() writes what provenance.commit() does."""
    from pycount.util import provenance
    here = provenance.commit()
    monkeypatch.setenv("PYCOUNT_COMMIT", "0123456789ab")
    git = ["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "lab"], check=True)
    (tmp_path / "site-packages").mkdir()
    monkeypatch.setattr(provenance, "_ROOT", tmp_path / "site-packages")
    assert provenance.commit() == "0123456789ab"
    monkeypatch.setattr(provenance, "_ROOT", tmp_path)           # (the repository itself)
    assert re.fullmatch(r"[0-9a-f]{12}", provenance.commit())
    out = subprocess.run(["bash", "-c", f'source <(sed -n "/^commit() {{/,/^}}/p" {ROOT}/tools/docker.sh); '
                          f'root={ROOT}; commit'], capture_output=True, text=True, check=True).stdout.strip()
    if (ROOT / ".git").exists():           # a checkout (not the image): both read git
        assert out == here                 # the script and the package write the same form
