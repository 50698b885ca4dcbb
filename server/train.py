"""workspace/executeCommand charcode.train: train or fine-tune a language's model in the background.

Argument ``{language, roots, minutes?}``; resolves when training ends with
``{path, val_bits_per_char}``. It runs ``python -m charcode.training train
--language L --repo R... --minutes M --output <models dir>/<L>.safetensors
--progress-json`` in a child process and turns its JSON progress lines into
``$/progress`` reports (percentage, characters/s, val bits/char, ETA) on the
client's workDoneToken, or on a token it creates. ``$/cancelRequest`` (or
cancelling the progress) stops the child. If the language already has a
usable model, training fine-tunes it (``--init-from``). The output goes to
the user models folder (the ``modelsDir`` setting, else
``$CHARCODE_MODELS_DIR`` or the platform's user data folder), where the
editor extension expects it; when it finishes the server switches to it
without a restart (unless a workspace or explicit model takes precedence,
which it says).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import sys
import uuid
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcServerError
from pygls.uris import to_fs_path

from charcode.training.languages import LANGUAGES
from charcode.training.registry import user_models_dir

from .arguments import bad, field, single_object
from .server import CharcodeServer

COMMAND = "charcode.train"
DEFAULT_MINUTES = 10.0
TRAINING_FAILED = -32001


async def train(ls: CharcodeServer, *args) -> dict:
    obj = single_object(COMMAND, args)
    language = field(COMMAND, obj, "language", str, check=lambda v: v in LANGUAGES)
    roots = [_root(r) for r in field(COMMAND, obj, "roots", list, check=lambda v: len(v) > 0)]
    minutes = field(
        COMMAND,
        obj,
        "minutes",
        (int, float),
        default=DEFAULT_MINUTES,
        check=lambda v: 0 < v <= 7 * 24 * 60,
    )
    if language in ls.trainings:
        raise bad(COMMAND, f"a {language} model is already training")
    output = _models_dir(ls) / f"{language}.safetensors"
    current = await ls.runner.run(
        None, lambda *, should_stop: ls.models.get(language, quiet=True), count=False
    )
    cmd = [sys.executable, "-m", "charcode.training", "train", "--language", language]
    for root in roots:
        cmd += ["--repo", root]
    cmd += ["--minutes", f"{float(minutes):g}", "--output", str(output), "--progress-json"]
    if current is not None:
        cmd += ["--init-from", str(current.path)]

    task = asyncio.ensure_future(_run(ls, language, cmd))
    ls.trainings[language] = task
    msg_id = ls.protocol.msg_id
    unhook = ls.protocol.on_cancel(msg_id, task.cancel) if msg_id is not None else (lambda: None)
    try:
        done = await task
    finally:
        unhook()
        ls.trainings.pop(language, None)
    path = Path(done.get("path") or output)
    ls.models.refresh(language)
    now = await ls.runner.run(None, lambda *, should_stop: ls.models.get(language), count=False)
    if now is not None and now.path != path:
        ls.notify(
            f"charcode: trained {path}, but {now.path} ({now.source}) takes precedence for {language}",
            types.MessageType.Warning,
        )
    return {"path": str(path), "val_bits_per_char": done.get("val_bits_per_char")}


def _root(value) -> str:
    if not isinstance(value, str) or not value:
        raise bad(COMMAND, f"roots must be folder paths, got {value!r}")
    path = to_fs_path(value) if value.startswith("file:") else value
    if not path or not Path(path).expanduser().is_dir():
        raise bad(COMMAND, f"{value} is not a folder")
    return str(Path(path).expanduser())


def _models_dir(ls: CharcodeServer) -> Path:
    return (
        Path(ls.settings.models_dir).expanduser() if ls.settings.models_dir else user_models_dir()
    )


async def _run(ls: CharcodeServer, language: str, cmd: list[str]) -> dict:
    """Run the trainer, reporting progress; the final {"done": true, ...} line, or raise."""
    progress = _Progress(ls, f"charcode: training {language}")
    await progress.begin()
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group: its worker processes stop with it
    )
    ls.trainer_pids.add(proc.pid)
    err_tail: collections.deque[str] = collections.deque(maxlen=20)
    stderr_task = asyncio.ensure_future(_drain(proc.stderr, err_tail))
    done: dict | None = None
    try:
        while line := await proc.stdout.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            if msg.get("done"):
                done = msg
            else:
                progress.report(msg)
        await proc.wait()
        await stderr_task
    except asyncio.CancelledError:
        await _stop(proc)
        stderr_task.cancel()
        progress.end("cancelled")
        raise
    finally:
        ls.trainer_pids.discard(proc.pid)
    if proc.returncode != 0 or done is None:
        reason = next(
            (s for s in reversed(err_tail) if s.strip()), f"exit status {proc.returncode}"
        )
        progress.end(f"failed: {reason}")
        ls.notify(f"charcode: training {language} failed: {reason}", types.MessageType.Error)
        raise JsonRpcServerError(f"training {language} failed: {reason}", TRAINING_FAILED)
    bits = done.get("val_bits_per_char")
    progress.end(
        f"done: {done.get('path')}"
        + (f", {bits:.3f} bits/char" if isinstance(bits, (int, float)) else "")
    )
    return done


async def _drain(stream: asyncio.StreamReader, tail: collections.deque) -> None:
    while line := await stream.readline():
        tail.append(line.decode("utf-8", "replace").rstrip())


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Stop the trainer and the processes it started (its process group)."""
    if proc.returncode is not None:
        return
    _signal_group(proc, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 5)
    except asyncio.TimeoutError:
        _signal_group(proc, signal.SIGKILL)
        await proc.wait()


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group start_new_session made; its id is the trainer's pid
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def stop_all_trainers(ls: CharcodeServer) -> None:
    """Shutdown or exit: stop every trainer this server started (they run in their own groups)."""
    for pid in list(ls.trainer_pids):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    ls.trainer_pids.clear()


class _Progress:
    """$/progress on the client's workDoneToken, or on one we create when the client allows."""

    def __init__(self, ls, title: str):
        self.ls = ls
        self.title = title
        params = ls.protocol.command_params.get()
        self.token = params.work_done_token if params is not None else None
        self.created = False

    async def begin(self) -> None:
        ls = self.ls
        if self.token is None:
            window = ls.client_capabilities.window
            if not (window and window.work_done_progress):
                return
            token = f"charcode-train-{uuid.uuid4()}"
            try:
                await ls.work_done_progress.create_async(token)
            except Exception:
                return
            self.token, self.created = token, True
        ls.work_done_progress.begin(
            self.token,
            types.WorkDoneProgressBegin(
                title=self.title, cancellable=True, percentage=0, message="building the corpus"
            ),
        )
        future = ls.work_done_progress.tokens.get(self.token)
        if future is not None:  # window/workDoneProgress/cancel from the client
            task = asyncio.current_task()
            future.add_done_callback(lambda f: f.cancelled() and task is not None and task.cancel())

    def report(self, p: dict) -> None:
        if self.token is None:
            return
        parts = []
        if isinstance(p.get("chars_per_sec"), (int, float)):
            parts.append(f"{p['chars_per_sec']:,.0f} chars/s")
        if isinstance(p.get("loss"), (int, float)):
            parts.append(f"loss {p['loss']:.3f}")
        if isinstance(p.get("val_bits_per_char"), (int, float)):
            parts.append(f"val {p['val_bits_per_char']:.3f} bits/char")
        if isinstance(p.get("eta_s"), (int, float)):
            parts.append(f"ETA {int(p['eta_s']) // 60}:{int(p['eta_s']) % 60:02d}")
        percent = p.get("percent")
        pct = max(0, min(100, int(percent))) if isinstance(percent, (int, float)) else None
        self.ls.work_done_progress.report(
            self.token, types.WorkDoneProgressReport(message=", ".join(parts), percentage=pct)
        )

    def end(self, message: str) -> None:
        if self.token is not None:
            self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
            self.ls.work_done_progress.tokens.pop(self.token, None)


def setup(server: CharcodeServer) -> None:
    server.command(COMMAND)(train)
    server.on_shutdown.append(stop_all_trainers)
