"""The Dockerfile builds Caffe through the same script as `make caffe`, with CUDA, as non-root."""
import re

from pycount import config


def test_dockerfile_builds_caffe_with_the_makefiles_script():
    docker = (config.ROOT / "Dockerfile").read_text()
    make = (config.ROOT / "Makefile").read_text()
    assert re.search(r"^caffe:.*\n\t.*tools/build_caffe\.sh", make, re.M)
    assert re.search(r"^RUN .*\n.*tools/build_caffe\.sh", docker, re.M), \
        "the image must build Caffe with tools/build_caffe.sh"
    assert re.search(r"^\s*WITH_CUDA=1", docker, re.M)
    archs = re.search(r'CUDA_ARCH_BIN="([0-9 ]+)"', docker).group(1).split()
    assert min(int(a) for a in archs) == 75                    # sm_75 (Turing) upward
    assert "tools/setup_venv.sh" in docker and "tools/setup_venv.sh" in make


def test_image_runs_as_a_non_root_user():
    users = re.findall(r"^USER\s+(\S+)", (config.ROOT / "Dockerfile").read_text(), re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
