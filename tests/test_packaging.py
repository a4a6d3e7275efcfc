"""The wheel ships the migrations inside `app` and installs no top-level `migrations`."""

import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
def test_the_wheel_ships_migrations_inside_app(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    builder = WheelBuilder(str(REPO_ROOT))
    (wheel,) = builder.build(directory=str(tmp_path), versions=["standard"])
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()

    assert "app/migrations/env.py" in names
    assert "app/migrations/script.py.mako" in names
    assert any(name.startswith("app/migrations/versions/0001_") for name in names)
    top_level = {name.split("/", 1)[0] for name in names}
    assert "migrations" not in top_level
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"app"}
