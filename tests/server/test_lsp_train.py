"""charcode.train over LSP with the real trainer CLI: $/progress, the result, the switch to the
new model without a restart, and cancellation (the trainer's processes stop)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from lsp_helpers import server_env, start_editor, stop_editor
from lsprotocol import types
from pygls.exceptions import JsonRpcException


def _trainer_cli_available() -> bool:
    try:
        out = subprocess.run(
            [sys.executable, "-m", "charcode.training", "train", "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "--progress-json" in out.stdout and "--init-from" in out.stdout


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not _trainer_cli_available(), reason="python -m charcode.training train is not there yet"
    ),
]


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    for f in range(4):
        body = "".join(
            f"def load_{f}_{i}(items):\n    result = []\n    for item in items:\n        result.append(item)\n    return result\n\n\n"
            for i in range(40)
        )
        (root / f"mod_{f}.py").write_text("import os\n\n\n" + body)
    return root


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


async def test_training_reports_progress_and_the_server_switches_to_the_new_model(
    trained_checkpoint, tmp_path
):
    repo = make_repo(tmp_path / "repo")
    user = tmp_path / "user-models"
    user.mkdir()
    shutil.copy(trained_checkpoint, user / "python.safetensors")  # training fine-tunes it
    ws = tmp_path / "ws"
    ws.mkdir()
    editor, _ = await start_editor(
        ws,
        tmp_path,
        init_options={"charcode": {"modelsDir": str(user)}},
        env=server_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / "cache")),
    )
    try:
        before = (await editor.command("charcode.modelInfo", {"language": "python"}))["languages"][
            "python"
        ]
        assert before["val_bits_per_char"] == 2.5  # the fixture's made-up figure
        editor.client.progress_reports["train-1"] = []  # a token the client made, as VS Code does
        result = await editor.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="charcode.train",
                arguments=[{"language": "python", "roots": [str(repo)], "minutes": 0.05}],
                work_done_token="train-1",
            )
        )
        assert result["path"] == str(user / "python.safetensors")
        assert isinstance(result["val_bits_per_char"], float)
        reports = editor.client.progress_reports["train-1"]
        assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].cancellable
        assert isinstance(reports[-1], types.WorkDoneProgressEnd)
        middle = [r for r in reports if isinstance(r, types.WorkDoneProgressReport)]
        assert middle and all(0 <= r.percentage <= 100 for r in middle)
        assert any("chars/s" in r.message for r in middle)
        after = (await editor.command("charcode.modelInfo", {"language": "python"}))["languages"][
            "python"
        ]
        assert after["val_bits_per_char"] == pytest.approx(result["val_bits_per_char"])
        assert after["path"] == result["path"]
        everything = await editor.command("charcode.modelInfo")
        assert not any(
            "." in lang for lang in everything["languages"]
        )  # not the trainer's python.last
    finally:
        await stop_editor(editor)


async def test_cancelling_training_stops_the_trainer(trained_checkpoint, tmp_path):
    repo = make_repo(tmp_path / "repo")
    user = tmp_path / f"user-{uuid.uuid4().hex}"
    ws = tmp_path / "ws"
    ws.mkdir()
    editor, _ = await start_editor(
        ws,
        tmp_path,
        init_options={"modelsDir": str(user)},
        env=server_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / "cache")),
    )
    try:
        msg_id = "train-cancel"
        fut = asyncio.wrap_future(
            editor.client.protocol.send_request(
                "workspace/executeCommand",
                types.ExecuteCommandParams(
                    command="charcode.train",
                    arguments=[{"language": "python", "roots": [str(repo)], "minutes": 5}],
                ),
                msg_id=msg_id,
            )
        )
        deadline = time.monotonic() + 60
        while not processes_mentioning(str(user)) or not any(
            isinstance(r, types.WorkDoneProgressBegin)
            for rs in editor.client.progress_reports.values()
            for r in rs
        ):
            assert time.monotonic() < deadline, "the trainer did not start"
            await asyncio.sleep(0.2)
        editor.client.protocol.notify("$/cancelRequest", types.CancelParams(id=msg_id))
        with pytest.raises(JsonRpcException) as err:
            await asyncio.wait_for(fut, 10)
        assert err.value.code == -32800
        deadline = time.monotonic() + 10
        while processes_mentioning(str(user)):
            assert time.monotonic() < deadline, "the trainer is still running"
            await asyncio.sleep(0.2)
        assert not (user / "python.safetensors").exists()
        # The trainer's processes can be gone from the process table a moment before the
        # server has reaped them and forgotten the training (a loaded machine widens it).
        deadline = time.monotonic() + 10
        while (await editor.command("charcode.debugStats"))["trainings"]:
            assert time.monotonic() < deadline, "the server still lists the training"
            await asyncio.sleep(0.1)
    finally:
        await stop_editor(editor)
