import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { describe as view, formatBytes, modelSummary } from "../../common/status";

const model = {
  name: "python-tiny",
  path: "/ws/.charcode/models/python.safetensors",
  source: "workspace",
  layers: 2,
  hidden: 128,
  val_bits_per_char: 2.3456,
  size_bytes: 2_500_000,
};

describe("language status", () => {
  test("a running server with a model shows its name and bits/char", () => {
    const v = view({ language: "python", state: "running", model });
    assert.equal(v.text, "charcode: python-tiny");
    assert.equal(v.detail, "2x128 LSTM · 2.35 bits/char · workspace");
    assert.equal(v.severity, "info");
    assert.equal(v.busy, false);
    assert.equal(v.command?.command, "charcode.showModelInfo");
  });

  test("no model: a warning with an action to train one for that language", () => {
    const v = view({ language: "lua", state: "running", model: { error: "no lua model found" } });
    assert.equal(v.text, "charcode: no model");
    assert.equal(v.severity, "warning");
    assert.deepEqual(v.command, { title: "Train a model", command: "charcode.trainWorkspace", arguments: ["lua"] });
  });

  test("busy while starting, installing and training", () => {
    assert.equal(view({ language: "c", state: "starting" }).busy, true);
    assert.equal(view({ language: "c", state: "installing" }).busy, true);
    const training = view({ language: "c", state: "running", model, training: 41.6 });
    assert.equal(training.busy, true);
    assert.equal(training.text, "charcode: training 42%");
  });

  test("failures point at a fix", () => {
    assert.equal(view({ language: "c", state: "noPython" }).command?.command, "charcode.createEnvironment");
    assert.equal(view({ language: "c", state: "failed" }).command?.command, "charcode.openLogs");
    assert.equal(view({ language: "c", state: "failed" }).severity, "error");
    assert.equal(view({ language: "c", state: "disabled", model }).command?.command, "charcode.toggleCompletions");
  });

  test("summaries tolerate missing fields", () => {
    assert.equal(modelSummary({ name: "x", path: "/x" }), "bits/char unknown");
    const learned = { name: "x", path: "/x", learned: { state: "ready", files: 12, bytes: 3 * 1024 * 1024 } };
    assert.equal(modelSummary(learned), "bits/char unknown · learned 12 files, 3.0 MB");
    const learning = { name: "x", path: "/x", learned: { state: "learning", files: 3, bytes: 10 } };
    assert.equal(modelSummary(learning), "bits/char unknown · learning the workspace (3 files so far)");
    assert.equal(formatBytes(undefined), "");
    assert.equal(formatBytes(2048), "2 KB");
    assert.equal(formatBytes(3 * 1024 * 1024), "3.0 MB");
  });
});
