"""The client installs on its own: no server, no package named `app`, and it imports fine in
a service that has its own `app` package."""

import json
import subprocess
from pathlib import Path

from tests.client.conftest import clean_env

PROBE = """
import importlib.metadata as md, importlib.util, json, sys
import taskexec_client, taskexec_client.cli
print(json.dumps({
    "app_before": importlib.util.find_spec("app") is not None,
    "dists": sorted(d.metadata["Name"].lower() for d in md.distributions()),
    "loaded_app": sorted(m for m in sys.modules if m == "app" or m.startswith("app.")),
    "client_file": taskexec_client.__file__,
}))
"""

BESIDE_APP = """
import app, taskexec_client
print(app.NAME, taskexec_client.__version__, taskexec_client.Client.__name__, app.__file__)
"""


def python(venv: Path, code: str, cwd: Path) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_client_venv_holds_no_server_and_no_app(client_venv: Path, tmp_path: Path) -> None:
    found = json.loads(python(client_venv, PROBE, tmp_path))

    assert found["app_before"] is False
    assert found["loaded_app"] == []
    assert "taskexec-client" in found["dists"]
    assert "httpx" in found["dists"]
    assert "taskexec" not in found["dists"]
    assert "fastapi" not in found["dists"]
    assert found["client_file"].startswith(str(client_venv))


def test_the_client_imports_beside_a_service_package_named_app(
    client_venv: Path, tmp_path: Path
) -> None:
    service = tmp_path / "service"
    (service / "app").mkdir(parents=True)
    (service / "app" / "__init__.py").write_text('NAME = "my-service"\n')

    out = python(client_venv, BESIDE_APP, service).split()

    assert out[:3] == ["my-service", "0.1.0", "Client"]
    assert out[3] == str(service / "app" / "__init__.py")
