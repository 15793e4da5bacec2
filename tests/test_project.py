"""The README's two set-up commands and .ci/run stay in sync."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci_lines = [l for l in (ROOT / ".ci/run").read_text().splitlines() if l.startswith("python3 -m venv")]
    assert len(ci_lines) == 1
    readme = (ROOT / "README.md").read_text()
    assert ci_lines[0] in readme


def test_readme_has_exactly_two_setup_commands_at_the_top():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    commands = [l for l in first_block.splitlines() if l.startswith("python3 -m venv .venv")]
    assert len(commands) == 2
    assert "syncxr generate" in commands[0] and "pytest" in commands[1]


def test_ci_installs_chromium_before_the_tests_and_requires_the_browser_tests():
    lines = (ROOT / ".ci/run").read_text().splitlines()
    test_line = next(i for i, l in enumerate(lines) if l.startswith("python3 -m venv"))
    install = next(i for i, l in enumerate(lines) if "apt-get install" in l and "chromium chromium-driver" in l)
    update = next(i for i, l in enumerate(lines) if "apt-get update" in l)
    assert update < install < test_line and "--no-install-recommends" in lines[install]
    assert "export CI=1" in lines[:test_line]  # tests/report/test_browser.py fails instead of skipping under CI


def test_test_files_have_unique_names():
    """Test folders are not packages: two files with one basename break collection of the whole suite."""
    from collections import Counter

    names = Counter(p.name for p in (Path(__file__).parent).rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
