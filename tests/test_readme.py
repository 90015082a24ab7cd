"""The README's commands are the ones CI and users actually run."""

from __future__ import annotations

from recut.models import REPO_ROOT


def _block_after(text: str, marker: str) -> str:
    rest = text[text.index(marker) :]
    start = rest.index("```bash\n") + len("```bash\n")
    return rest[start : rest.index("```", start)].strip()


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    command = _block_after(readme, "<!-- test-command")
    ci_lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci_lines


def test_readme_demo_spec_exists() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    demo = _block_after(readme, "## Set-up")
    spec = demo.rsplit("recut run ", 1)[1].split()[0]
    assert (REPO_ROOT / spec).is_file()
