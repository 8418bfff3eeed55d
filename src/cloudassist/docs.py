"""Generate the reference pages that must never drift from the code: API coverage and settings.

`python -m cloudassist.docs` rewrites docs/api-coverage.md and docs/settings.md;
`--check` only compares and exits 1 when either is stale (CI runs that).
"""

from __future__ import annotations

import sys
from pathlib import Path

from cloudassist.api.rpc.actions import CLOUD_ASSISTANT, FAMILY, TAGGING, load
from cloudassist.settings import SETTINGS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def api_coverage() -> str:
    actions = load()
    lines = [
        "# API coverage",
        "",
        "Generated from the action registry by `python -m cloudassist.docs`; do not edit by hand.",
        "",
        f"{sum(name in actions for name in CLOUD_ASSISTANT)} of the {len(CLOUD_ASSISTANT)} Cloud Assistant "
        "operations of ECS API 2014-05-26 are implemented, and ECS's tagging operations "
        f"({', '.join(TAGGING)}) for the Cloud Assistant resource types. The others answer "
        "`UnsupportedOperation` (HTTP 400) in the API's error format.",
        "",
        "| Action | Implemented | Request parameters |",
        "|---|---|---|",
    ]
    for name in FAMILY:
        spec = actions.get(name)
        if spec is None:
            lines.append(f"| {name} | no | |")
            continue
        params = ", ".join(
            f"`{p.name}{'.N' if p.kind == 'list' else '.N.' + '/'.join(p.fields) if p.kind == 'objects' else ''}`"
            + (" (required)" if p.required else "")
            for p in spec.params
        )
        lines.append(f"| {name} | yes | {params} |")
    return "\n".join(lines) + "\n"


def settings_page() -> str:
    lines = [
        "# Settings",
        "",
        "Generated from `cloudassist.settings.SETTINGS` by `python -m cloudassist.docs`; do not edit by hand.",
        "Each setting is read from the environment variable shown; `cloudassist server` flags override them.",
        "",
        "| Variable | Default | Meaning |",
        "|---|---|---|",
    ]
    for s in SETTINGS:
        default = ",".join(s.default) if isinstance(s.default, tuple) else s.default
        lines.append(f"| `{s.env}` | `{default}` | {s.help} |")
    return "\n".join(lines) + "\n"


PAGES = {"api-coverage.md": api_coverage, "settings.md": settings_page}


def main(argv: list[str]) -> int:
    stale = []
    for name, render in PAGES.items():
        path, text = DOCS / name, render()
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            DOCS.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}; run python -m cloudassist.docs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
