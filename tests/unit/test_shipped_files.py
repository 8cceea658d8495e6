"""The workflows and migrations ship with the code; ``workflows init`` copies them out."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from yinfin_flow.cli import main
from yinfin_flow.config import PACKAGE_DIR, PROJECT_ROOT, Settings, shipped
from yinfin_flow.engine.definitions import load_dir
from yinfin_flow.ledger import templates


def test_the_shipped_directories_are_found_from_the_checkout_and_from_the_package(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    # a checkout: the top-level directories
    assert shipped("workflows") == PROJECT_ROOT / "workflows"
    assert (shipped("migrations") / "env.py").is_file()
    # an installed wheel has them inside the package: that one wins
    fake_package = tmp_path / "site-packages" / "yinfin_flow"
    for name in ("workflows", "migrations"):
        (fake_package / name).mkdir(parents=True)
    monkeypatch.setattr("yinfin_flow.config.PACKAGE_DIR", fake_package)
    assert shipped("workflows") == fake_package / "workflows"
    assert PACKAGE_DIR.name == "yinfin_flow"


def test_an_installed_package_keeps_its_default_database_in_the_working_folder(tmp_path: Path,
                                                                               monkeypatch) -> None:
    monkeypatch.delenv("YINFIN_INSTANCE_DIR", raising=False)
    assert Settings.from_env({}).database_url == f"sqlite:///{PROJECT_ROOT / 'instance' / 'yinfin.sqlite'}"
    fake_package = tmp_path / "site-packages" / "yinfin_flow"
    (fake_package / "migrations").mkdir(parents=True)
    monkeypatch.setattr("yinfin_flow.config.PACKAGE_DIR", fake_package)
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).database_url == f"sqlite:///{tmp_path / 'instance' / 'yinfin.sqlite'}"


def test_the_shipped_workflows_are_the_default_and_the_setting_overrides(tmp_path: Path) -> None:
    assert Settings.from_env({}).workflows_dir == shipped("workflows")
    assert Settings.from_env({"YINFIN_WORKFLOWS_DIR": str(tmp_path)}).workflows_dir == tmp_path


def test_workflows_init_copies_definitions_and_posting_templates_to_edit(tmp_path: Path) -> None:
    target = tmp_path / "company-workflows"
    runner = CliRunner()
    done = runner.invoke(main, ["workflows", "init", str(target)])
    assert done.exit_code == 0, done.output
    assert "YINFIN_WORKFLOWS_DIR=" in done.output
    assert set(load_dir(target)) == set(load_dir(shipped("workflows")))
    assert set(templates.load_all(target)) == set(templates.load_all(shipped("workflows")))
    assert (target / "postings" / "expense.approved.yaml").is_file()

    # an edited copy is never overwritten by accident
    edited = target / "expense.yaml"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n# ours\n", encoding="utf-8")
    again = runner.invoke(main, ["workflows", "init", str(target)])
    assert again.exit_code == 1
    assert "already in" in again.output and "expense.yaml" in again.output
    assert edited.read_text(encoding="utf-8").endswith("# ours\n")
    forced = runner.invoke(main, ["workflows", "init", str(target), "--force"])
    assert forced.exit_code == 0
    assert not edited.read_text(encoding="utf-8").endswith("# ours\n")

    # and the copy is what `workflows check` (and the engine) read when pointed at it
    checked = runner.invoke(main, ["workflows", "check", "--dir", str(target)])
    assert checked.exit_code == 0, checked.output


def test_the_version_is_written_once_and_the_command_line_tells_it() -> None:
    from importlib.metadata import version

    import yinfin_flow

    assert version("yinfin-flow") == yinfin_flow.__version__
    done = CliRunner().invoke(main, ["--version"])
    assert done.exit_code == 0 and done.output.strip() == f"yinfin-flow, version {yinfin_flow.__version__}"
