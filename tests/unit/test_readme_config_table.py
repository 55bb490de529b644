"""Every configuration key is documented in the README's table."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from cityos.platform.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def environment_names() -> list[str]:
    names: list[str] = []
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            names += [f"CITYOS__{name.upper()}__{key.upper()}" for key in section.model_fields]
        else:
            names.append(f"CITYOS__{name.upper()}")
    return names


def test_every_key_is_in_the_readme_table() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [name for name in environment_names() if f"| `{name}` |" not in text]
    assert not missing, f"README.md config table lacks: {missing}"
