"""The documents' commands work on a new user's checkout, not only on the machine they were written on."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_commands_in_the_documents_use_the_readmes_virtualenv_not_an_absolute_one():
    absolute = re.compile(r"(?<![\w.])/(?:[\w.-]+/)*\.?venv/bin/")
    found = [
        f"{document.name}:{number}: {line.strip()}"
        for document in DOCUMENTS
        for number, line in enumerate(document.read_text().splitlines(), 1)
        if absolute.search(line)
    ]
    assert not found, "use the README's .venv:\n" + "\n".join(found)
