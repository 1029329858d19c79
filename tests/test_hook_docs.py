"""Every hook is documented and tested (datasette's rules), and the generated reference is current."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from gaia_core import docgen
from gaia_core.plugins import new_manager

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugin-authoring.md"
HOOKS = [hook.__name__ for hook in docgen.hooks()]


def test_the_generator_finds_every_hook_the_manager_knows() -> None:
    known = {name for name in dir(new_manager().hook) if name.startswith("gaia_")}
    assert set(HOOKS) == known
    assert len(HOOKS) == len(set(HOOKS))


@pytest.mark.parametrize("hook", docgen.hooks(), ids=HOOKS)
def test_every_hook_has_a_docstring_with_a_description(hook) -> None:
    doc = inspect.getdoc(hook) or ""
    summary, _, body = doc.partition("\n\n")
    assert summary.strip().endswith("."), f"{hook.__name__}: the first line must be a one-sentence summary"
    assert body.strip(), f"{hook.__name__}: describe the arguments, return value and when it is called"
    for name in inspect.signature(hook).parameters:
        assert f":param {name}:" in doc, f"{hook.__name__}: document the parameter {name!r}"


@pytest.mark.parametrize("hook", docgen.hooks(), ids=HOOKS)
def test_every_hook_has_a_signature_heading_in_the_guide(hook) -> None:
    headings = [line[4:] for line in GUIDE.read_text(encoding="utf-8").splitlines() if line.startswith("### ")]
    assert docgen.signature(hook) in headings, f"no heading `### {docgen.signature(hook)}`: run `make docs`"


def test_the_guide_is_what_the_generator_produces_now() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert docgen.render(text) == text, "run `make docs` (python -m gaia_core.docgen docs/plugin-authoring.md)"


def _test_sources() -> str:
    files = [*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/*/tests/**/*.py")]
    return "\n".join(p.read_text(encoding="utf-8") for p in files if p.name != Path(__file__).name)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_referenced_by_some_test(hook: str) -> None:
    assert hook in _test_sources(), f"no test in tests/ or plugins/*/tests mentions {hook}"


def test_signature_headings_read_like_python() -> None:
    assert docgen.signature(docgen.hooks()[0]) == "gaia_runners() -> Iterable[RunnerSpec]"


def test_render_keeps_the_hand_written_parts() -> None:
    text = f"# Title\n\nintro\n\n{docgen.START}\nold stuff\n{docgen.END}\n\noutro\n"
    new = docgen.render(text)
    assert new.startswith("# Title\n\nintro\n\n") and new.endswith(f"{docgen.END}\n\noutro\n")
    assert "old stuff" not in new and "### gaia_queues() -> Iterable[QueueSpec]" in new
    assert docgen.render(new) == new


@pytest.mark.parametrize("text", ["no markers", f"{docgen.END}\n{docgen.START}", f"{docgen.START}{docgen.START}"])
def test_render_refuses_a_file_without_one_pair_of_markers(text: str) -> None:
    with pytest.raises(ValueError, match="must hold one"):
        docgen.render(text)


def _docgen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gaia_core.docgen", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_command_line_regenerates_and_checks(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(f"hand-written\n{docgen.START}\n{docgen.END}\n")
    stale = _docgen("--check", str(path))
    assert stale.returncode == 1 and "is stale" in stale.stderr
    assert _docgen(str(path)).returncode == 0
    assert "### gaia_runners() -> Iterable[RunnerSpec]" in path.read_text()
    assert _docgen("--check", str(path)).returncode == 0
    missing = _docgen("--check", str(tmp_path / "absent.md"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
