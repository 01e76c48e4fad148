"""The README's two set-up commands and CI's entry point stay in step."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    return [l.strip() for l in lines if l.strip().startswith("pip install -c constraints.txt")]


def test_ci_runs_the_readme_test_command():
    commands = _commands()
    test_cmd = [c for c in commands if "pytest" in c]
    assert len(test_cmd) == 1
    ci = [l.strip() for l in (REPO / ".ci" / "run").read_text().splitlines()
          if l.strip() and not l.lstrip().startswith("#")]
    assert test_cmd[0] in ci


def test_readme_main_job_is_the_default_train():
    assert any(c.endswith("&& gankit train") for c in _commands())


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python API example, shortened (steps 500 -> 10), runs as written."""
    text = (REPO / "README.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "api.train" in code and "api.evaluate" in code and "api.resume" in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("500", "10"), "README.md", "exec"), {})
    assert "hq_fraction" in capsys.readouterr().out
    assert (tmp_path / "runs" / "ring-api" / "checkpoints").is_dir()
