"""Write docs/cli.md from the CLI itself (the core and the plugins in this repository).

    python scripts/gen_cli_docs.py           # regenerate docs/cli.md
    python scripts/gen_cli_docs.py --check   # exit 1 (and say so) when docs/cli.md is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefkit import _cli_docs  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="Only check that docs/cli.md is current.")
    ap.add_argument("--output", type=Path, default=_cli_docs.ROOT / "docs" / "cli.md")
    a = ap.parse_args()
    text = _cli_docs.render()
    if a.check:
        current = a.output.read_text() if a.output.exists() else ""
        if current != text:
            print(f"{a.output} is stale: run `python scripts/gen_cli_docs.py`", file=sys.stderr)
            return 1
        return 0
    a.output.write_text(text)
    print(f"wrote {a.output} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
