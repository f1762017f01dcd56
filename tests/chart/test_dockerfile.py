"""Static checks of the Dockerfile and its build context (no Docker engine in CI).

The image is what the chart runs: it must be non-root with a numeric uid (runAsNonRoot
verifies it), work on a read-only root filesystem, carry no secrets or local state, and start
`crmflow` so that the chart's `args` pick the service.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
DOCKERIGNORE = (ROOT / ".dockerignore").read_text().splitlines()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        result[-1].append(ins)
    return result


def test_multi_stage_on_python_311_slim():
    froms = [args for word, args in instructions() if word == "FROM"]
    assert len(froms) == 2
    for args in froms:
        image = args.split()[0]
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image
    # The runtime stage takes only the virtual environment from the build stage.
    runtime = stages()[-1]
    copies = [args for word, args in runtime if word == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]


def test_build_installs_the_project_not_editable():
    runs = " ".join(args for word, args in stages()[0] if word == "RUN")
    assert "pip install ." in runs and "-e" not in runs.split()
    assert "compileall" in runs  # byte code at build time: the root filesystem is read-only


def test_runs_as_numeric_non_root_user():
    runtime = stages()[-1]
    users = [args for word, args in runtime if word == "USER"]
    assert users, "the runtime stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) == 10001  # matches the chart's runAsUser
    # Nothing after USER switches back to root.
    after = runtime[[w for w, _ in runtime].index("USER") :]
    assert not [a for w, a in after if w == "USER" and a.split(":")[0] in ("0", "root")]


def test_entrypoint_is_crmflow_and_writable_state_is_under_tmp():
    words = dict(instructions())
    assert json.loads(words["ENTRYPOINT"]) == ["crmflow"]
    env = " ".join(a for w, a in instructions() if w == "ENV")
    assert "CRMFLOW_DATA_DIR=/tmp/crmflow" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "CRMFLOW_BIND_HOST=0.0.0.0" in env
    exposed = {int(p) for a in (a for w, a in instructions() if w == "EXPOSE") for p in a.split()}
    assert exposed == {50051, 50052, 50053, 50054}


def test_no_secrets_in_the_image_definition():
    secretish = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|DATABASE_URL)\s*=", re.I)
    for word, args in instructions():
        if word in ("ENV", "ARG", "LABEL", "RUN"):
            assert not secretish.search(args), (word, args)
    assert "ADD" not in [w for w, _ in instructions()]  # COPY only: no remote fetches


def test_build_context_excludes_local_state_and_credentials():
    # Default-deny, then only what the package needs.
    assert DOCKERIGNORE[[line.strip() for line in DOCKERIGNORE].index("*")] == "*"
    allowed = {line[1:] for line in DOCKERIGNORE if line.startswith("!")}
    assert allowed == {"pyproject.toml", "setup.py", "README.md", "src/", "services/"}
    # local state, credentials, and an in-place build of the compiled index (it would shadow
    # the image's own build if it were copied in)
    for needed in ("**/.env", "**/*.db", "**/__pycache__", "**/*.so"):
        assert needed in DOCKERIGNORE
    # Everything the Dockerfile copies is in the context.
    copied = {
        name
        for word, args in instructions()
        if word == "COPY" and not args.startswith("--from")
        for name in args.split()[:-1]  # the sources; the last word is the destination
    }
    assert copied <= {"pyproject.toml", "setup.py", "README.md", "src", "services"}


def test_build_stage_compiles_the_trigger_index():
    """The build stage has a C compiler for the mypyc build (setup.py) and fails the image if
    the compiled index or its C loop did not come out of the install; the runtime stage has
    no compiler."""
    build, _, runtime = DOCKERFILE.partition(" AS runtime")
    assert "apt-get install -y --no-install-recommends gcc" in build
    assert "index.compiled() and index.NATIVE" in build
    assert "gcc" not in runtime
