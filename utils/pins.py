"""Read the pinned package list out of ``environment.yml`` (the one place versions live).

The file is a conda environment; its ``pip:`` block holds the pins. Lines of the form
``#   no-deps: NAME==VERSION`` name packages installed with ``pip install --no-deps``.
Only the standard library is used so that this runs before any venv exists:

    python -m utils.pins torch          # index options + the torch pin (installed first, alone)
    python -m utils.pins requirements   # every other pin, as a pip requirements file
    python -m utils.pins no-deps        # the --no-deps packages, one per line

torch goes first and alone so that only its install consults the extra (CPU-build) index; with
torch already satisfied, the rest resolve from the default index without touching it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([A-Za-z0-9_.+\-]+)$")


@dataclass
class Pins:
    python: str = ""
    pip_options: list[str] = field(default_factory=list)  # e.g. "--extra-index-url URL"
    requirements: list[str] = field(default_factory=list)  # "name==version"
    no_deps: list[str] = field(default_factory=list)  # "name==version", installed --no-deps

    def versions(self) -> dict[str, str]:
        """Map normalised package name -> pinned version (both lists, python included)."""
        out = {"python": self.python}
        for req in self.requirements + self.no_deps:
            name, version = req.split("==")
            out[normalise(name)] = version
        return out


def normalise(name: str) -> str:
    """PEP 503 name normalisation: ``Transformer_Lens`` -> ``transformer-lens``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path | str = REPO_ROOT / "environment.yml") -> Pins:
    """Parse a conda environment file of the course's simple shape into :class:`Pins`.

    Raises ``ValueError`` naming the line when a pip entry is not an exact ``==`` pin,
    so an accidental ``torch>=2`` can never let a resolver pull another build.
    """
    pins = Pins()
    in_pip = False
    for lineno, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.strip()
        m = re.match(r"#\s*no-deps:\s*(\S+)$", line)
        if m:
            if not _PIN.match(m.group(1)):
                raise ValueError(f"{path}:{lineno}: no-deps entry must be NAME==VERSION, got {m.group(1)!r}")
            pins.no_deps.append(m.group(1))
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("- python="):
            pins.python = line.split("=", 1)[1]
        elif line == "- pip:":
            in_pip = True
        elif in_pip and line.startswith("- "):
            entry = line[2:].strip()
            if entry.startswith("--"):
                pins.pip_options.append(entry)
            elif _PIN.match(entry):
                pins.requirements.append(entry)
            else:
                raise ValueError(f"{path}:{lineno}: pip entry must be an exact pin NAME==VERSION, got {entry!r}")
        elif not raw.startswith(" "):
            in_pip = False
    if not pins.requirements:
        raise ValueError(f"{path}: found no pip pins")
    return pins


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "requirements"
    path = argv[1] if len(argv) > 1 else REPO_ROOT / "environment.yml"
    pins = read_pins(path)
    torch = [r for r in pins.requirements if normalise(r.split("==")[0]) == "torch"]
    if what == "torch":
        print("\n".join(pins.pip_options + torch))
    elif what == "requirements":
        print("\n".join(r for r in pins.requirements if r not in torch))
    elif what == "no-deps":
        print("\n".join(pins.no_deps))
    else:
        print(f"usage: python -m utils.pins [torch|requirements|no-deps] [environment.yml]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
