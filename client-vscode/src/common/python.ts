/**
 * Python: which interpreter runs the charcode language server, and how the
 * private environment (a venv in the extension's global storage) is made.
 *
 * Order of candidates: the `charcode.pythonPath` setting (alone: an explicit
 * choice is never silently replaced), else the Python extension's selected
 * interpreter, charcode's private environment, and `python3` on PATH. The
 * first that has the `charcode` package and torch wins.
 *
 * Processes are started through an injected `Run`, and the VS Code API only
 * through a parameter, so the unit tests run under plain node.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type * as vscode from "vscode";

import { errorMessage, type Logger, nullLogger } from "./log";

export const MIN_PYTHON: [number, number] = [3, 10];

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** called with each line of stdout and stderr as it arrives */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
}

export interface RunResult {
  /** exit code; null when the process could not start, was killed or timed out */
  code: number | null;
  stdout: string;
  stderr: string;
  /** why it did not run to an exit code (ENOENT, timeout, cancelled) */
  error?: string;
}

export type Run = (command: string, args: string[], options?: RunOptions) => Promise<RunResult>;

/** `Run` on real processes. Never rejects. */
export const spawnRun: Run = (command, args, options = {}) =>
  new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let error: string | undefined;
    let settled = false;
    const finish = (code: number | null) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        resolve({ code, stdout, stderr, error });
      }
    };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(command, args, {
        cwd: options.cwd ?? os.tmpdir(),
        env: options.env ?? process.env,
        stdio: ["ignore", "pipe", "pipe"],
        windowsHide: true,
      });
    } catch (e) {
      error = errorMessage(e);
      resolve({ code: null, stdout, stderr, error });
      return;
    }
    const lines = (chunk: string, pending: { rest: string }) => {
      if (!options.onLine) {
        return;
      }
      const parts = (pending.rest + chunk).split(/\r?\n|\r/);
      pending.rest = parts.pop() ?? "";
      for (const line of parts) {
        if (line.trim()) {
          options.onLine(line);
        }
      }
    };
    const out = { rest: "" };
    const err = { rest: "" };
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      lines(d, out);
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
      lines(d, err);
    });
    const onAbort = () => {
      error = "cancelled";
      child.kill();
    };
    options.signal?.addEventListener("abort", onAbort);
    if (options.signal?.aborted) {
      onAbort();
    }
    const timer = setTimeout(() => {
      error = `timed out after ${options.timeoutMs} ms`;
      child.kill();
    }, options.timeoutMs ?? 2 ** 31 - 1);
    child.on("error", (e) => {
      error = errorMessage(e);
      finish(null);
    });
    child.on("close", (code) => {
      for (const p of [out, err]) {
        if (p.rest.trim()) {
          options.onLine?.(p.rest);
        }
      }
      finish(error ? null : code);
    });
  });

/** Printed as one JSON line by the interpreter under test. Imports nothing heavy. */
export const PROBE_SCRIPT = `
import importlib.util, json, sys
def has(name):
    try:
        return importlib.util.find_spec(name) is not None
    except Exception:
        return False
info = {"executable": sys.executable, "version": list(sys.version_info[:3]),
        "charcode": has("charcode.server"), "torch": has("torch"), "pygls": has("pygls"),
        "venv": has("venv") and has("ensurepip")}
try:
    from importlib.metadata import version
    info["charcodeVersion"] = version("charcode")
except Exception:
    pass
print(json.dumps(info))
`;

export interface Probe {
  python: string;
  /** runs charcode.server: has charcode, torch and pygls on a new enough Python */
  ok: boolean;
  executable?: string;
  version?: string;
  charcodeVersion?: string;
  /** modules missing, e.g. ["charcode", "torch"] */
  missing: string[];
  /** can make a venv with pip (to base the private environment on) */
  canCreateVenv: boolean;
  /** one line on why it cannot be used, when !ok */
  problem?: string;
}

interface ProbeJson {
  executable: string;
  version: number[];
  charcode: boolean;
  torch: boolean;
  pygls: boolean;
  venv: boolean;
  charcodeVersion?: string;
}

export function versionAtLeast(version: number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    const v = version[i] ?? 0;
    if (v !== min[i]) {
      return v > min[i];
    }
  }
  return true;
}

/** Interprets the probe script's output (exported for tests). */
export function parseProbe(python: string, result: RunResult): Probe {
  const fail = (problem: string): Probe => ({
    python,
    ok: false,
    missing: [],
    canCreateVenv: false,
    problem,
  });
  if (result.code === null) {
    const why = result.error ?? "did not run";
    return fail(/ENOENT/.test(why) ? "not found" : `could not run it (${why})`);
  }
  if (result.code !== 0) {
    const last = result.stderr.trim().split(/\r?\n/).pop() ?? "";
    return fail(`exited with code ${result.code}${last ? `: ${last}` : ""}`);
  }
  const line = result.stdout.trim().split(/\r?\n/).pop() ?? "";
  let info: ProbeJson;
  try {
    info = JSON.parse(line) as ProbeJson;
  } catch {
    return fail(`unexpected output: ${line.slice(0, 200)}`);
  }
  const version = info.version.join(".");
  const base = {
    python,
    executable: info.executable,
    version,
    charcodeVersion: info.charcodeVersion,
    canCreateVenv: info.venv && versionAtLeast(info.version, MIN_PYTHON),
  };
  if (!versionAtLeast(info.version, MIN_PYTHON)) {
    return {
      ...base,
      ok: false,
      missing: [],
      problem: `Python ${version} is too old (charcode needs ${MIN_PYTHON.join(".")}+)`,
    };
  }
  const missing = [
    ...(info.charcode ? [] : ["charcode"]),
    ...(info.torch ? [] : ["torch"]),
    ...(info.pygls ? [] : ["pygls"]),
  ];
  return {
    ...base,
    ok: missing.length === 0,
    missing,
    problem: missing.length ? `Python ${version} lacks ${missing.join(", ")}` : undefined,
  };
}

export async function probeInterpreter(python: string, run: Run = spawnRun): Promise<Probe> {
  const result = await run(python, ["-c", PROBE_SCRIPT], { timeoutMs: 30_000 });
  return parseProbe(python, result);
}

export type CandidateSource = "setting" | "pythonExtension" | "privateEnv" | "path";

export interface Candidate {
  source: CandidateSource;
  python: string;
}

export const SOURCE_LABEL: Record<CandidateSource, string> = {
  setting: "charcode.pythonPath",
  pythonExtension: "the Python extension's interpreter",
  privateEnv: "charcode's private environment",
  path: "python3 on PATH",
};

export interface CandidateInputs {
  /** `charcode.pythonPath`, already expanded; "" when unset */
  setting: string;
  /** the Python extension's selected interpreter, when that extension is installed */
  pythonExtension?: string;
  /** the private environment's interpreter, when that environment exists */
  privateEnv?: string;
  /** the command for a Python on PATH */
  pathPython?: string;
}

/** The interpreters to try, in order (duplicates removed). */
export function candidateList(inputs: CandidateInputs): Candidate[] {
  if (inputs.setting) {
    return [{ source: "setting", python: inputs.setting }];
  }
  const list: Candidate[] = [];
  const add = (source: CandidateSource, python: string | undefined) => {
    if (python && !list.some((c) => c.python === python)) {
      list.push({ source, python });
    }
  };
  add("pythonExtension", inputs.pythonExtension);
  add("privateEnv", inputs.privateEnv);
  add("path", inputs.pathPython ?? (process.platform === "win32" ? "python" : "python3"));
  return list;
}

export interface Resolution {
  /** the interpreter to run the server with, if any candidate works */
  found?: { candidate: Candidate; probe: Probe };
  /** every candidate probed, in order */
  tried: { candidate: Candidate; probe: Probe }[];
}

export async function resolveInterpreter(
  candidates: Candidate[],
  probe: (python: string) => Promise<Probe>,
): Promise<Resolution> {
  const tried: Resolution["tried"] = [];
  for (const candidate of candidates) {
    const result = await probe(candidate.python);
    tried.push({ candidate, probe: result });
    if (result.ok) {
      return { found: { candidate, probe: result }, tried };
    }
  }
  return { tried };
}

/** One paragraph saying what was tried and why each failed. */
export function describeFailure(resolution: Resolution): string {
  const parts = resolution.tried.map(
    ({ candidate, probe }) =>
      `${candidate.python} (${SOURCE_LABEL[candidate.source]}): ${probe.problem ?? "unusable"}`,
  );
  return `No Python with charcode and torch was found. Tried ${parts.join("; ")}.`;
}

/** A short form for notifications: "python3: Python 3.11.7 lacks charcode, torch". */
export function shortFailure(resolution: Resolution | undefined): string {
  const parts = (resolution?.tried ?? []).map(({ candidate, probe }) => `${candidate.python}: ${probe.problem ?? "unusable"}`);
  return parts.join("; ") || "no interpreter found";
}

/** The Python extension's (ms-python.python) API, as much as we use. */
interface PythonExtensionApi {
  environments?: {
    getActiveEnvironmentPath(resource?: vscode.Uri): { path: string } | undefined;
    resolveEnvironment(
      env: { path: string } | string,
    ): Promise<{ executable: { uri?: vscode.Uri } } | undefined>;
    onDidChangeActiveEnvironmentPath?: vscode.Event<unknown>;
  };
  settings?: {
    getExecutionDetails?(resource?: vscode.Uri): { execCommand?: string[] };
  };
}

export const PYTHON_EXTENSION_ID = "ms-python.python";

async function pythonExtensionApi(api: typeof vscode): Promise<PythonExtensionApi | undefined> {
  const extension = api.extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION_ID);
  if (!extension) {
    return undefined;
  }
  return extension.isActive ? extension.exports : await extension.activate();
}

/**
 * The interpreter selected in the Python extension, or undefined when that
 * extension is not installed or has none. Never throws.
 */
export async function pythonExtensionInterpreter(
  api: typeof vscode,
  resource?: vscode.Uri,
  log: Logger = nullLogger,
): Promise<string | undefined> {
  try {
    const python = await pythonExtensionApi(api);
    if (!python) {
      return undefined;
    }
    const envs = python.environments;
    if (envs) {
      const active = envs.getActiveEnvironmentPath(resource);
      if (active) {
        const resolved = await envs.resolveEnvironment(active);
        return resolved?.executable.uri?.fsPath ?? active.path;
      }
    }
    return python.settings?.getExecutionDetails?.(resource).execCommand?.[0];
  } catch (e) {
    log.warn(`Could not ask the Python extension for its interpreter: ${errorMessage(e)}`);
    return undefined;
  }
}

/** Subscribes to interpreter changes in the Python extension, when it is installed. */
export async function onPythonExtensionInterpreterChange(
  api: typeof vscode,
  listener: () => void,
): Promise<vscode.Disposable | undefined> {
  try {
    const python = await pythonExtensionApi(api);
    return python?.environments?.onDidChangeActiveEnvironmentPath?.(listener);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// The private environment

export function privateEnvDir(globalStoragePath: string): string {
  return path.join(globalStoragePath, "python-env");
}

export function venvPython(envDir: string, platform: NodeJS.Platform = process.platform): string {
  return platform === "win32"
    ? path.join(envDir, "Scripts", "python.exe")
    : path.join(envDir, "bin", "python");
}

/** The interpreter of an existing private environment, else undefined. */
export function existingPrivateEnvPython(globalStoragePath: string): string | undefined {
  const python = venvPython(privateEnvDir(globalStoragePath));
  return fs.existsSync(python) ? python : undefined;
}

/** The newest `charcode-*.whl` in a folder (the one shipped in the .vsix). */
export function findWheel(dir: string): string | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return undefined;
  }
  const wheels = names
    .filter((n) => /^charcode-.+\.whl$/.test(n))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const newest = wheels.pop();
  return newest ? path.join(dir, newest) : undefined;
}

/** Arguments after the venv's python for installing torch and the wheel. */
export function pipInstallArgs(wheel: string, torchRequirement: string, extra: string[]): string[] {
  return [
    "-m",
    "pip",
    "install",
    "--disable-pip-version-check",
    "--no-input",
    ...extra,
    torchRequirement,
    wheel,
  ];
}

/** A failed setup step: `message` says what went wrong, `hint` how to fix it. */
export class SetupError extends Error {
  constructor(
    message: string,
    readonly hint: string,
    readonly details = "",
  ) {
    super(message);
    this.name = "SetupError";
  }
}

export interface CreateEnvOptions {
  /** interpreters to base the venv on, in order of preference */
  basePythons: string[];
  envDir: string;
  wheel: string;
  torchRequirement: string;
  pipExtraArgs: string[];
  run?: Run;
  log?: Logger;
  /** short human-readable progress ("Installing torch...") */
  onStep?: (message: string) => void;
  signal?: AbortSignal;
}

/** Turns a line of pip output into a short progress message, or undefined. */
export function pipProgressMessage(line: string): string | undefined {
  const text = line.trim();
  const m = /^(Collecting|Downloading|Processing|Building wheel for|Installing collected packages:|Successfully installed)\s*(.*)$/.exec(
    text,
  );
  if (!m) {
    return undefined;
  }
  const rest = m[2].length > 80 ? `${m[2].slice(0, 77)}...` : m[2];
  return `${m[1]} ${rest}`.trim();
}

function tail(text: string, lines = 15): string {
  return text.trim().split(/\r?\n/).slice(-lines).join("\n");
}

/**
 * Creates (or re-creates) the private environment: a venv from the first
 * base interpreter that can make one, then `pip install <torch> <wheel>`.
 * Returns the new interpreter's probe. Throws SetupError.
 */
export async function createPrivateEnvironment(options: CreateEnvOptions): Promise<Probe> {
  const run = options.run ?? spawnRun;
  const log = options.log ?? nullLogger;
  const step = (m: string) => {
    log.info(m);
    options.onStep?.(m);
  };
  const cancelled = () => new SetupError("Cancelled.", "Run `charcode: Create Private Python Environment` to try again.");

  // 1) a base interpreter that can make a venv with pip
  step("Looking for a Python to base the environment on");
  let base: Probe | undefined;
  const rejected: string[] = [];
  for (const python of options.basePythons) {
    const p = await probeInterpreter(python, run);
    if (p.canCreateVenv) {
      base = p;
      break;
    }
    rejected.push(`${python}: ${p.problem ?? `Python ${p.version ?? "?"} cannot create a venv with pip (no ensurepip)`}`);
  }
  if (!base) {
    throw new SetupError(
      `No Python ${MIN_PYTHON.join(".")}+ that can create a virtual environment was found (${rejected.join("; ")}).`,
      "Install Python 3.10 or newer with venv support (Debian/Ubuntu: `sudo apt install python3-venv`), or set `charcode.pythonPath` to an interpreter that has charcode installed.",
    );
  }
  if (options.signal?.aborted) {
    throw cancelled();
  }

  // 2) a fresh venv (a half-made one from a failed attempt is removed first)
  step(`Creating a virtual environment with Python ${base.version}`);
  await fs.promises.rm(options.envDir, { recursive: true, force: true });
  await fs.promises.mkdir(path.dirname(options.envDir), { recursive: true });
  const venv = await run(base.executable ?? base.python, ["-m", "venv", options.envDir], {
    timeoutMs: 180_000,
    signal: options.signal,
    onLine: (l) => log.info(`venv: ${l}`),
  });
  if (options.signal?.aborted) {
    throw cancelled();
  }
  if (venv.code !== 0) {
    throw new SetupError(
      `Creating the virtual environment in ${options.envDir} failed (${venv.error ?? `exit code ${venv.code}`}).`,
      "Debian/Ubuntu need `sudo apt install python3-venv`; or set `charcode.pythonPath` to an interpreter that has charcode installed.",
      tail(venv.stderr + venv.stdout),
    );
  }
  const python = venvPython(options.envDir);

  // 3) torch and the charcode wheel (and their dependencies) from the package index
  step(`Installing ${options.torchRequirement} and charcode (this can take a few minutes)`);
  const pip = await run(python, pipInstallArgs(options.wheel, options.torchRequirement, options.pipExtraArgs), {
    timeoutMs: 60 * 60_000,
    signal: options.signal,
    env: { ...process.env, PIP_NO_INPUT: "1", PYTHONUNBUFFERED: "1" },
    onLine: (l) => {
      log.info(`pip: ${l}`);
      const m = pipProgressMessage(l);
      if (m) {
        options.onStep?.(m);
      }
    },
  });
  if (options.signal?.aborted) {
    throw cancelled();
  }
  if (pip.code !== 0) {
    const output = pip.stderr + pip.stdout;
    const noTorch = /No matching distribution found for torch|Could not find a version that satisfies the requirement torch/i.test(
      output,
    );
    throw new SetupError(
      `pip could not install ${options.torchRequirement} and charcode (${pip.error ?? `exit code ${pip.code}`}).`,
      noTorch
        ? `Check \`charcode.torchRequirement\` ("${options.torchRequirement}") and \`charcode.pipExtraArgs\`: pip found no matching torch for Python ${base.version}.`
        : "Check the network or proxy settings pip needs (pip.conf, PIP_INDEX_URL), `charcode.torchRequirement` and `charcode.pipExtraArgs`; the log has pip's full output.",
      tail(output),
    );
  }

  // 4) the result must really work
  step("Checking the new environment");
  const result = await probeInterpreter(python, run);
  if (!result.ok) {
    throw new SetupError(
      `The new environment does not work: ${result.problem ?? "unknown problem"}.`,
      "Open the log (charcode: Open Logs) for pip's output, then run `charcode: Create Private Python Environment` again.",
    );
  }
  step(`Ready: charcode ${result.charcodeVersion ?? ""} on Python ${result.version}`);
  return result;
}
