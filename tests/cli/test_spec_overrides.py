"""`jobs.spec.spec_with_overrides`: what `job run`'s flags do to a deployment YAML, as a
function the service can call too."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchscore.errors import SpecError
from batchscore.jobs.spec import spec_with_overrides


def test_flags_replace_settings_and_add_to_retry_and_environment(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text("def run(mb):\n    return mb\n")
    yml = tmp_path / "deployment.yml"
    yml.write_text("code_configuration:\n  code: .\n  scoring_script: score.py\n"
                   "settings:\n  mini_batch_size: 3\n  retry_settings:\n    max_retries: 5\n"
                   "    timeout: 60\n  environment_variables:\n    A: '1'\n    B: '2'\n")
    spec = spec_with_overrides(yml, retry={"timeout": 7}, environment_variables={"B": "9"},
                               mini_batch_size=4, error_threshold=None)
    assert spec.mini_batch_size == 4
    assert (spec.retry_settings.max_retries, spec.retry_settings.timeout) == (5, 7)
    assert spec.environment_variables == {"A": "1", "B": "9"}
    assert spec_with_overrides(yml) == spec_with_overrides(yml, retry={},
                                                           environment_variables={})


def test_without_a_file_the_flags_are_the_spec(tmp_path: Path) -> None:
    script = tmp_path / "score.py"
    script.write_text("def run(mb):\n    return mb\n")
    spec = spec_with_overrides(None, retry={"max_retries": 0}, environment_variables={"X": "1"},
                               scoring_script=str(script))
    assert (spec.retry_settings.max_retries, spec.environment_variables) == (0, {"X": "1"})
    with pytest.raises(SpecError, match=r"command line: retry_settings\.timeout"):
        spec_with_overrides(None, retry={"timeout": 0}, scoring_script=str(script))
