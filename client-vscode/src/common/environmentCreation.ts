/**
 * Environment creation: charcode's private environment, a venv in the
 * extension's global storage into which pip installs the charcode wheel
 * shipped inside the .vsix and its dependencies (NumPy, pygls, tree-sitter:
 * a few tens of MB). No torch: serving runs in NumPy; torchInstall.ts adds
 * torch when Train on Workspace first needs it. Where the environment lives,
 * and how it is (re)made.
 *
 * Processes are started through an injected `Run`, so the unit tests run
 * under plain node.
 */
import * as fs from "fs";
import * as path from "path";

import { MIN_PYTHON, type Probe, probeInterpreter } from "./interpreterDiscovery";
import { type Logger, nullLogger } from "./log";
import { type Run, spawnRun } from "./processes";

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

/** Arguments after the venv's python for installing the wheel (and its dependencies). */
export function pipInstallArgs(wheel: string, extra: string[]): string[] {
  return ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", ...extra, wheel];
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
  pipExtraArgs: string[];
  run?: Run;
  log?: Logger;
  /** short human-readable progress ("Installing charcode...") */
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

/** The last lines of a program's output, for a SetupError's details. */
export function tail(text: string, lines = 15): string {
  return text.trim().split(/\r?\n/).slice(-lines).join("\n");
}

/**
 * Creates (or re-creates) the private environment: a venv from the first
 * base interpreter that can make one, then `pip install <wheel>`.
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

  // 3) the charcode wheel, and its dependencies from the package index
  step("Installing charcode and its dependencies (a few tens of MB)");
  const pip = await run(python, pipInstallArgs(options.wheel, options.pipExtraArgs), {
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
    const missing = /No matching distribution found for (\S+)/i.exec(output)?.[1];
    throw new SetupError(
      `pip could not install charcode (${pip.error ?? `exit code ${pip.code}`}).`,
      missing
        ? `pip found no ${missing} for Python ${base.version} on the package index: check \`charcode.pipExtraArgs\` and pip's index settings (pip.conf, PIP_INDEX_URL).`
        : "Check the network or proxy settings pip needs (pip.conf, PIP_INDEX_URL) and `charcode.pipExtraArgs`; the log has pip's full output.",
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
