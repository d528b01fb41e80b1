"""Bad input on the command line: one message naming the input and what is wrong, exit code 2,
no traceback, and a finished output already at the output location left byte for byte."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_checks import assert_one_error

from batchscore.workspace import init_workspace

ECHO = "def run(mini_batch):\n    return [p for p in mini_batch]\n"
FRAME = "def run(mini_batch):\n    return mini_batch\n"
OLD = b"an earlier job's finished output\n"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output folder holding a finished output (the file and its owner marker)."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "predictions.csv").write_bytes(OLD)
    (folder / ".batchscore-job.json").write_text('{"job": "job-earlier"}')
    return folder


def untouched(out: Path) -> bool:
    return (sorted(p.name for p in out.iterdir()) == [".batchscore-job.json", "predictions.csv"]
            and (out / "predictions.csv").read_bytes() == OLD)


def write(path: Path, text: str | bytes) -> str:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def inputs(tmp_path: Path) -> str:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.txt").write_text(f"{i}\n")
    return str(folder)


# Each case: (tmp_path, inputs) -> (arguments after `job run`, fragments of the message).
Case = Callable[[Path, str], tuple[list[str], list[str]]]


def _missing_script(tmp: Path, inputs: str) -> tuple[list[str], list[str]]:
    return (["--scoring-script", str(tmp / "nope.py"), "-i", inputs],
            [f"scoring script '{tmp / 'nope.py'}' does not exist"])


def _markup_in_the_message(tmp: Path, inputs: str) -> tuple[list[str], list[str]]:
    folder = tmp / "[/x] [bold]"  # printed as it is, never read as rich markup
    folder.mkdir(parents=True)
    return (["--scoring-script", str(folder / "nope.py"), "-i", inputs],
            [f"scoring script '{folder / 'nope.py'}' does not exist"])


def _script_without_run(tmp: Path, inputs: str) -> tuple[list[str], list[str]]:
    path = write(tmp / "norun.py", "def init():\n    pass\n")
    return (["--scoring-script", path, "-i", inputs],
            [f"scoring script '{path}' defines no run(mini_batch) function"])


def _script_with_syntax_error(tmp: Path, inputs: str) -> tuple[list[str], list[str]]:
    path = write(tmp / "broken.py", "def run(mini_batch:\n    return []\n")
    return (["--scoring-script", path, "-i", inputs],
            [f"scoring script '{path}' has a syntax error", "line 1"])


def _glob_matching_nothing(tmp: Path, inputs: str) -> tuple[list[str], list[str]]:
    path = write(tmp / "ok.py", ECHO)
    pattern = str(tmp / "in" / "*.jpg")
    return (["--scoring-script", path, "-i", inputs, "-i", pattern],
            [f"input '{pattern}' matches no file"])


def _binary_csv(tmp: Path, inputs: str) -> tuple[list[str], list[str]]:
    path = write(tmp / "frame.py", FRAME)
    data = write(tmp / "garbage.csv", bytes(range(128, 256)) * 8)
    return (["--scoring-script", path, "-i", data, "--input-format", "csv"],
            [f"input file://{data}: not valid utf-8 text at byte 0"])


def _binary_csv_with_lines(tmp: Path, inputs: str) -> tuple[list[str], list[str]]:
    path = write(tmp / "frame.py", FRAME)
    data = write(tmp / "garbage.csv", bytes(range(256)) * 8)  # ragged rows before bad bytes
    return (["--scoring-script", path, "-i", data, "--input-format", "csv"],
            [f"input file://{data}: not a readable CSV file: Error tokenizing data"])


def _latin1_csv(tmp: Path, inputs: str) -> tuple[list[str], list[str]]:
    path = write(tmp / "frame.py", FRAME)
    data = write(tmp / "cafes.csv", "name,n\ncafé,1\n".encode("latin-1"))
    return (["--scoring-script", path, "-i", data, "--input-format", "csv"],
            [f"input file://{data}: not valid utf-8 text at byte 10",
             "set input_encoding"])


def _yaml(text: str, *fragments: str) -> Case:
    def case(tmp: Path, inputs: str) -> tuple[list[str], list[str]]:
        write(tmp / "score.py", ECHO)
        spec = write(tmp / "deployment.yml", "scoring_script: score.py\n" + text)
        return [spec, "-i", inputs], [f"{spec}: ", *fragments]

    return case


def _flags(*flags: str, fragments: list[str]) -> Case:
    def case(tmp: Path, inputs: str) -> tuple[list[str], list[str]]:
        path = write(tmp / "ok.py", ECHO)
        return ["--scoring-script", path, "-i", inputs, *flags], fragments

    return case


CASES: dict[str, Case] = {
    "missing-script": _missing_script,
    "script-without-run": _script_without_run,
    "markup-in-the-message": _markup_in_the_message,
    "script-syntax-error": _script_with_syntax_error,
    "glob-matches-nothing": _glob_matching_nothing,
    "binary-csv": _binary_csv,
    "binary-csv-with-lines": _binary_csv_with_lines,
    "latin1-csv": _latin1_csv,
    "unknown-top-key": _yaml(
        "mini_batch_sise: 3\n",
        "unknown key 'mini_batch_sise' (did you mean 'mini_batch_size'?)"),
    "unknown-settings-key": _yaml(
        "settings:\n  mini_batch_sise: 3\n",
        "unknown key settings.mini_batch_sise (did you mean 'mini_batch_size'?)"),
    "unknown-retry-key": _yaml(
        "settings:\n  retry_settings:\n    max_retrys: 3\n",
        "unknown key retry_settings.max_retrys (did you mean 'max_retries'?)"),
    "unknown-top-retry-key": _yaml(
        "retry_settings:\n  timout: 3\n",
        "unknown key retry_settings.timout (did you mean 'timeout'?)"),
    "mini-batch-size-0": _yaml("mini_batch_size: 0\n", "mini_batch_size: must be at least 1"),
    "output-action-bogus": _yaml(
        "settings:\n  output_action: bogus\n",
        "output_action: Input should be 'append_row' or 'summary_only' (got 'bogus')"),
    "error-threshold-minus-5": _yaml(
        "error_threshold: -5\n", "error_threshold:", "(got -5)"),
    "timeout-0": _yaml(
        "retry_settings:\n  timeout: 0\n", "retry_settings.timeout:", "greater than 0"),
    "size-for-files": _flags(
        "--mini-batch-size", "10kb",
        fragments=["mini_batch_size for file inputs is a number of files, not '10kb'"]),
    "flag-mini-batch-size-0": _flags(
        "--mini-batch-size", "0",
        fragments=["command line: mini_batch_size: must be at least 1 (got 0)"]),
    "flag-timeout-0": _flags(
        "--timeout", "0", fragments=["command line: retry_settings.timeout:", "greater than 0"]),
    "flag-env-without-value": _flags(
        "--env", "NOVALUE", fragments=["--env 'NOVALUE': expected KEY=VALUE"]),
}


@pytest.mark.parametrize("name", CASES)
def test_bad_input_one_message_exit_2_output_untouched(invoke, tmp_path, inputs, out, name):
    args, fragments = CASES[name](tmp_path, inputs)
    # --overwrite: even a run allowed to replace the output must not touch it on bad input
    result = invoke("job", "run", *args, "-o", str(out), "--overwrite", "--no-progress")
    assert_one_error(result, *fragments)
    assert result.stdout == ""
    assert untouched(out)


def test_spec_yaml_that_is_not_a_mapping(invoke, tmp_path, inputs, out):
    spec = write(tmp_path / "deployment.yml", "- 1\n- 2\n")
    result = invoke("job", "run", spec, "-i", inputs, "-o", str(out), "--no-progress")
    assert_one_error(result, f"job spec '{spec}' must be a mapping, not list")


@pytest.mark.parametrize(("body", "type_name"), [
    ("return {p: 1 for p in mini_batch}", "builtins.dict"),
    ("return (p for p in mini_batch)", "builtins.generator"),
])
def test_run_returning_wrong_type_fails_job_exit_2_with_reason(
    invoke, tmp_path, inputs, out, body, type_name
):
    path = write(tmp_path / "wrong.py", f"def run(mini_batch):\n    {body}\n")
    result = invoke("job", "run", "--scoring-script", path, "-i", inputs, "-o", str(out),
                    "--overwrite", "--no-progress")
    # The script broke its contract: bad input (exit code 2), like a script without run().
    message = assert_one_error(
        result, f"run() returned a {type_name}; it must return a list (one item per input) "
        "or a pandas DataFrame", code=2)
    assert message.startswith("error: job job-") and " failed: run() returned" in message
    assert untouched(out)


def test_finished_output_refused_without_overwrite_replaced_with_it(
    invoke, tmp_path, inputs
):
    out = tmp_path / "out"
    first = write(tmp_path / "first.py", "def run(mb):\n    return ['a'] * len(mb)\n")
    second = write(tmp_path / "second.py", "def run(mb):\n    return ['b'] * len(mb)\n")
    common = ["-i", inputs, "-o", str(out), "--no-progress"]
    assert invoke("job", "run", "--scoring-script", first, *common).exit_code == 0
    before = (out / "predictions.csv").read_bytes()
    assert before == b"a\na\na\n"

    for script in (first, second):  # the same job again, and another job
        result = invoke("job", "run", "--scoring-script", script, *common)
        assert_one_error(result, f"output location file://{out} already holds a finished "
                         f"output: {out}/predictions.csv; pass --overwrite to replace it")
        assert (out / "predictions.csv").read_bytes() == before

    result = invoke("job", "run", "--scoring-script", second, *common, "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "predictions.csv").read_bytes() == b"b\nb\nb\n"


# -- the workspace ---------------------------------------------------------------------------

def _ws_missing(tmp: Path) -> tuple[str, list[str]]:
    return "/nonexistent/ws", [
        "no batchscore workspace at /nonexistent/ws (missing batchscore.toml); "
        "create one with `batchscore init`"]


def _ws_format_99(tmp: Path) -> tuple[str, list[str]]:
    root = init_workspace(tmp / "ws99").settings.root
    cfg = root / "batchscore.toml"
    cfg.write_text(cfg.read_text().replace("format = 1", "format = 99"))
    return str(root), [f"{cfg} has workspace format 99, newer than this batchscore",
                       "upgrade batchscore"]


def _ws_corrupt_toml(tmp: Path) -> tuple[str, list[str]]:
    root = init_workspace(tmp / "wsbad").settings.root
    cfg = root / "batchscore.toml"
    cfg.write_bytes(b"[stores\ndata = \x00\n")
    return str(root), [f"{cfg} is not valid TOML"]


def _ws_newer_database(tmp: Path) -> tuple[str, list[str]]:
    ws = init_workspace(tmp / "wsnew")
    ws.close()
    db = ws.settings.root / "state.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff9999'")
    conn.close()
    return str(ws.settings.root), [
        f"state database sqlite:///{db} has schema revision 'ffff9999', newer than this "
        "batchscore understands", "upgrade batchscore"]


def _ws_unknown_section(tmp: Path) -> tuple[str, list[str]]:
    root = init_workspace(tmp / "wssec").settings.root
    cfg = root / "batchscore.toml"
    cfg.write_text(cfg.read_text() + "[databse]\nurl = 'x'\n")
    return str(root), [f"{cfg}: unknown section [databse] (did you mean 'database'?)"]


WORKSPACES = {
    "missing": _ws_missing,
    "format-99": _ws_format_99,
    "corrupt-toml": _ws_corrupt_toml,
    "unknown-section": _ws_unknown_section,
    "newer-database": _ws_newer_database,
}


@pytest.mark.parametrize("name", WORKSPACES)
@pytest.mark.parametrize("command", [["job", "list"], ["job", "run"]])
def test_bad_workspace_one_message_exit_2(invoke, tmp_path, inputs, out, name, command):
    root, fragments = WORKSPACES[name](tmp_path)
    args = list(command)
    if command == ["job", "run"]:
        args += ["--scoring-script", write(tmp_path / "ok.py", ECHO), "-i", inputs,
                 "-o", str(out), "--overwrite", "--no-progress"]
    result = invoke(*args, "-w", root)
    assert_one_error(result, *fragments)
    assert untouched(out)


@pytest.mark.parametrize("command", ["show", "logs", "cancel", "resume"])
def test_unknown_job_id(invoke, command):
    result = invoke("job", command, "job-nope")
    assert_one_error(
        result, "no job with id 'job-nope'; `batchscore job list` shows the jobs")
