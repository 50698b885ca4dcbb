/**
 * Interpreter discovery: which Python runs the charcode language server.
 *
 * Order of candidates: the `charcode.pythonPath` setting (alone: an explicit
 * choice is never silently replaced), else the Python extension's selected
 * interpreter, charcode's private environment (environmentCreation.ts says
 * where it lives), and `python3` on PATH. The first that has the `charcode`
 * package (and pygls) wins: serving needs no torch. Whether it has torch is
 * noted, for Train on Workspace (torchInstall.ts offers it when missing).
 *
 * Processes are started through an injected `Run`, and the VS Code API only
 * through a parameter, so the unit tests run under plain node.
 */
import type * as vscode from "vscode";

import { errorMessage, type Logger, nullLogger } from "./log";
import { type Run, type RunResult, spawnRun } from "./processes";

export const MIN_PYTHON: [number, number] = [3, 10];

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
  /** runs charcode.server: has charcode and pygls on a new enough Python */
  ok: boolean;
  /** torch can be found (training needs it; serving does not) */
  torch: boolean;
  executable?: string;
  version?: string;
  charcodeVersion?: string;
  /** modules the server needs that are missing, e.g. ["charcode", "pygls"] */
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
    torch: false,
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
    torch: info.torch,
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
  return `No Python with charcode was found. Tried ${parts.join("; ")}.`;
}

/** A short form for notifications: "python3: Python 3.11.7 lacks charcode". */
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
