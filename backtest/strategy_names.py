"""The bundled strategies' names, apart from ``strategy.py`` so that the
CLI's help lists them without loading pandas."""
from pathlib import Path


def known_strategies() -> list[str]:
    import strategies

    folder = Path(strategies.__file__).parent
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
