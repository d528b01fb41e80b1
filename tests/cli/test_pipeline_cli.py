"""`batchscore pipeline list|start|runs|show|cancel`: published pipelines here, and through a
running service with --server."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx

from batchscore.video.probe import probe
from cli.cli_checks import Invoke, assert_one_error
from service.svc_helpers import make_clip

SMALL = ["-p", "style=2", "-p", "max_size=32", "-p", "workers=1", "-p", "segment_frames=12"]


def test_list_names_every_published_pipeline(invoke: Invoke) -> None:
    result = invoke("pipeline", "list", "--json")
    assert result.exit_code == 0, result.output
    found = {p["name"]: p for p in json.loads(result.stdout)}
    assert {"video-style", "batch-endpoint", "train-evaluate-register", "batch-job"} <= set(found)
    assert found["batch-job"]["role"] == "admin"
    assert "input" in found["video-style"]["parameters"]["properties"]


def test_start_runs_here_to_its_end_and_shows_in_runs(invoke: Invoke, ws, tmp_path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    (ws.data.local_path("incoming")).mkdir(parents=True)
    shutil.copy(clip, ws.data.local_path("incoming", "clip.mp4"))
    result = invoke("pipeline", "start", "video-style", "-p", "input=incoming/clip.mp4",
                    "-p", "output=outgoing/styled.mp4", *SMALL)
    assert result.exit_code == 0, result.output
    assert " video-style succeeded job " in result.stdout
    run_id = result.stdout.split()[1]
    styled = probe(ws.data.local_path("outgoing", "styled.mp4"))
    assert styled.frame_pts == probe(clip).frame_pts
    listed = invoke("pipeline", "runs", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
    shown = json.loads(invoke("pipeline", "show", run_id).stdout)
    assert shown["state"] == "succeeded" and shown["params"]["style"] == "2"


def test_bad_parameters_are_refused_before_a_run_exists(invoke: Invoke, ws) -> None:
    assert_one_error(invoke("pipeline", "start", "video-style", "-p", "nonsense"),
                     "--param takes KEY=VALUE, got 'nonsense'")
    assert_one_error(invoke("pipeline", "start", "no-such-pipeline"), "no-such-pipeline")
    assert_one_error(invoke("pipeline", "start", "video-style", "-p", "input=../../etc/passwd",
                            "-p", "output=o.mp4"), "input")
    assert json.loads(invoke("pipeline", "runs", "--json").stdout) == []
    assert_one_error(invoke("pipeline", "show", "no-such-run"), "no-such-run")


def test_start_through_the_service(invoke: Invoke, service: str, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    put = httpx.put(f"{service}/api/v1/data/incoming/clip.mp4", content=clip.read_bytes(),
                    headers={"Authorization": f"Bearer {os.environ['BATCHSCORE_TOKEN']}"})
    assert put.status_code == 201, put.text
    result = invoke("pipeline", "start", "video-style", "-p", "input=incoming/clip.mp4",
                    "-p", "output=outgoing/", *SMALL, "--server", service, "--wait")
    assert result.exit_code == 0, result.output
    assert " video-style succeeded job " in result.stdout
    run_id = result.stdout.split()[1]
    runs = json.loads(invoke("pipeline", "runs", "--server", service, "--json").stdout)
    assert run_id in [r["id"] for r in runs]
    shown = json.loads(invoke("pipeline", "show", run_id, "--server", service).stdout)
    assert shown["state"] == "succeeded" and shown["output_url"]
    # a finished run cannot be canceled: one clear line, through the API's 4xx
    assert invoke("pipeline", "cancel", run_id, "--server", service).exit_code != 0
    # the service's own validation, through the CLI
    bad = invoke("pipeline", "start", "video-style", "-p", "input=/etc/passwd", "-p",
                 "output=outgoing/", "--server", service)
    assert_one_error(bad, "input")
