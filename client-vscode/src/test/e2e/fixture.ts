/**
 * What the end-to-end test and the typing benchmark share: the paths, the
 * fixture model (trained once with the charcode CLI and cached), the fixture
 * workspace, code-server and the environment and user settings it runs with.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { execFileText, log } from "./harness";

export const ROOT = path.resolve(__dirname, "../../../..");
export const REPO = path.resolve(ROOT, "..");
export const E2E_DIR = path.join(ROOT, ".e2e");
export const FIXTURE = path.join(ROOT, "e2e", "fixture");

export function defaultPython(): string {
  const venv = path.join(REPO, ".venv", "bin", "python");
  return fs.existsSync(venv) ? venv : "python3";
}

export function newestVsix(): string {
  const dist = path.join(ROOT, "dist");
  const found = fs.existsSync(dist) ? fs.readdirSync(dist).filter((f) => f.endsWith(".vsix")) : [];
  if (!found.length) {
    throw new Error("no .vsix in dist/: run `npm run package` first");
  }
  return path.join(dist, found.sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).pop() ?? "");
}

export async function codeServerBin(): Promise<string> {
  if (process.env.CHARCODE_E2E_CODE_SERVER) {
    return process.env.CHARCODE_E2E_CODE_SERVER;
  }
  const { code, output } = await execFileText("bash", [path.join(ROOT, "scripts", "install-code-server.sh")], {
    timeoutMs: 900_000,
  });
  if (code !== 0) {
    throw new Error(`installing code-server failed:\n${output}`);
  }
  return output.trim().split("\n").pop() ?? "";
}

/** The fixture model: trained once on the fixture corpus with the charcode CLI, cached in .e2e/model. */
export async function fixtureModel(python: string): Promise<string> {
  if (process.env.CHARCODE_E2E_MODEL) {
    return process.env.CHARCODE_E2E_MODEL;
  }
  const args = [
    "-m",
    "charcode.training",
    "train",
    "--language",
    "python",
    "--repo",
    path.join(FIXTURE, "corpus"),
    // 1x128 learns the corpus's shape in a few hundred steps (about 40 s of CPU)
    "--layers",
    "1",
    "--hidden",
    "128",
    "--steps",
    process.env.CHARCODE_E2E_TRAIN_STEPS ?? "300",
    "--eval-every",
    "300",
    "--val-chars",
    "4096",
    "--seed",
    "1",
  ];
  // cached per training arguments and corpus content
  const hash = createHash("sha256").update(JSON.stringify(args));
  const corpus = path.join(FIXTURE, "corpus");
  for (const name of fs.readdirSync(corpus).sort()) {
    hash.update(name).update(fs.readFileSync(path.join(corpus, name)));
  }
  const model = path.join(E2E_DIR, "model", hash.digest("hex").slice(0, 12), "python.safetensors");
  if (fs.existsSync(model)) {
    return model;
  }
  log(`training the fixture model with ${python}`);
  const started = Date.now();
  const { code, output } = await execFileText(
    python,
    [...args, "--cache-dir", path.join(path.dirname(model), "cache"), "--output", model],
    { timeoutMs: 600_000, env: { ...process.env, TQDM_DISABLE: "1" } },
  );
  if (code !== 0 || !fs.existsSync(model)) {
    throw new Error(`training the fixture model failed (exit ${code}):\n${output.slice(-3000)}`);
  }
  log(`fixture model trained in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return model;
}

/** A venv with nothing but pip: the "plain python3 on PATH" of a user who has never installed charcode. */
export async function plainPython(runDir: string, env: NodeJS.ProcessEnv): Promise<string> {
  const dir = path.join(runDir, "plain-python");
  const { code, output } = await execFileText("python3", ["-m", "venv", dir], { env, timeoutMs: 120_000 });
  if (code !== 0) {
    throw new Error(`python3 -m venv failed: ${output}`);
  }
  const bin = path.join(dir, "bin");
  const check = await execFileText(path.join(bin, "python3"), ["-c", "import charcode.server"], { env });
  if (check.code === 0) {
    throw new Error("the plain python3 already has charcode; the install flow would not be tested");
  }
  return bin;
}

/** The environment code-server (and so the extension host) runs in. */
export function serverEnv(runDir: string, extraPath?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ["VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX", "CHARCODE_MODELS_DIR"]) {
    delete env[name];
  }
  // no interpreter that already has charcode may be found on PATH
  const charcodePython = process.env.CHARCODE_PYTHON ? path.dirname(process.env.CHARCODE_PYTHON) : undefined;
  const venvBin = path.join(REPO, ".venv", "bin");
  const parts = (env.PATH ?? "").split(path.delimiter).filter((p) => p && p !== charcodePython && p !== venvBin);
  env.PATH = [...(extraPath ? [extraPath] : []), ...parts].join(path.delimiter);
  env.XDG_CONFIG_HOME = path.join(runDir, "xdg", "config");
  env.XDG_DATA_HOME = path.join(runDir, "xdg", "data");
  env.XDG_CACHE_HOME = path.join(runDir, "xdg", "cache");
  // pip's downloads are kept next to the code-server install, across clones and runs
  env.PIP_CACHE_DIR = path.join(
    process.env.CHARCODE_E2E_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "charcode-vscode-e2e"),
    "pip",
  );
  env.CHARCODE_MODELS_DIR = path.join(runDir, "empty-models");
  env.PIP_NO_INPUT = "1";
  return env;
}

/** Copies the fixture workspace into `workspace` with the fixture model as its Python model. */
export async function prepareWorkspace(workspace: string, python: string): Promise<void> {
  fs.cpSync(path.join(FIXTURE, "workspace"), workspace, { recursive: true });
  // more Python to train on in Train on Workspace
  fs.cpSync(path.join(FIXTURE, "corpus"), path.join(workspace, "helpers"), { recursive: true });
  const model = await fixtureModel(python);
  fs.mkdirSync(path.join(workspace, ".charcode", "models"), { recursive: true });
  fs.copyFileSync(model, path.join(workspace, ".charcode", "models", "python.safetensors"));
}

/** VS Code user settings that keep the workbench quiet, local and predictable, plus `extra`. */
export function userSettings(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    "files.autoSave": "off",
    "security.workspace.trust.enabled": false,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoUpdate": false,
    "extensions.autoCheckUpdates": false,
    "extensions.ignoreRecommendations": true,
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": false,
    "workbench.enableExperiments": false,
    "git.enabled": false,
    "editor.wordBasedSuggestions": "off",
    "editor.quickSuggestions": { other: "off", comments: "off", strings: "off" },
    "editor.suggestOnTriggerCharacters": false,
    "editor.inlineSuggest.enabled": true,
    "editor.minimap.enabled": false,
    // every step types at the top level, whatever the line before ended with
    "editor.autoIndent": "none",
    "chat.commandCenter.enabled": false,
    ...extra,
  };
}
