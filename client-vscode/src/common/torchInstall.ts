/**
 * Torch on demand. Serving runs in NumPy and needs no torch; training does.
 * The first Train on Workspace in an interpreter without torch offers to
 * install it: the CPU-only build (PyTorch's CPU index on Linux) unless an
 * NVIDIA GPU is found, then plain `torch` (PyPI's Linux build is the CUDA
 * one). The offer says how large the download is; pip's own progress bar
 * becomes the notification's progress; cancelling kills pip, and the
 * interpreter goes on serving without torch.
 *
 * Processes run through an injected `Run` and the notifications through an
 * injected `TorchUi`, so the unit tests run under plain node.
 */
import * as fs from "fs";

import { pipProgressMessage, SetupError, tail } from "./environmentCreation";
import { errorMessage, type Logger, nullLogger } from "./log";
import { type Run, spawnRun } from "./processes";

/** PyTorch's index of CPU-only builds (it also holds torch's dependencies). */
export const CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu";

/**
 * Approximate downloads in MB. Linux CPU: the torch 2.13.0+cpu wheel for
 * CPython 3.11 is 192 MB, its dependencies (sympy, networkx, jinja2, ...)
 * about 10 MB more, 700 MB once unpacked. Linux CUDA: the torch wheel (about
 * 0.9 GB) and NVIDIA's CUDA libraries (cuDNN, cuBLAS, ...: about 2 GB) from
 * PyPI. macOS and Windows: PyPI's wheels of recent releases.
 */
export const DOWNLOAD_MB = { linuxCpu: 200, linuxCuda: 3000, windows: 200, mac: 80 } as const;

/** Whether an NVIDIA GPU was found, and what showed it (for the log). */
export interface GpuCheck {
  found: boolean;
  evidence: string;
}

/**
 * Looks for an NVIDIA GPU where it decides which torch to install (Linux,
 * where PyPI's torch is the CUDA build): the driver's /proc entry, else
 * `nvidia-smi -L` listing a GPU.
 */
export async function findNvidiaGpu(
  run: Run = spawnRun,
  platform: NodeJS.Platform = process.platform,
  exists: (path: string) => boolean = fs.existsSync,
): Promise<GpuCheck> {
  if (platform !== "linux") {
    return { found: false, evidence: `not looked for on ${platform}, where PyPI's torch is the build to install` };
  }
  if (exists("/proc/driver/nvidia/version")) {
    return { found: true, evidence: "/proc/driver/nvidia/version exists" };
  }
  const smi = await run("nvidia-smi", ["-L"], { timeoutMs: 15_000 });
  const gpu = /^GPU \d+:.*$/m.exec(smi.stdout)?.[0];
  if (smi.code === 0 && gpu) {
    return { found: true, evidence: `nvidia-smi: ${gpu.trim()}` };
  }
  const why = smi.code === null ? `did not run (${smi.error ?? "?"})` : smi.code === 0 ? "lists no GPU" : `exited with code ${smi.code}`;
  return { found: false, evidence: `no /proc/driver/nvidia, and nvidia-smi ${why}` };
}

/** Which torch to install, from where, and how large it is. */
export interface TorchPlan {
  build: "cpu" | "cuda" | "default";
  /** `charcode.torchRequirement` */
  requirement: string;
  /** pip arguments charcode adds before `charcode.pipExtraArgs` (PyTorch's CPU index, or none) */
  indexArgs: string[];
  /** approximate download in MB */
  downloadMB: number;
  /** for the offer: "the CPU-only build of torch (about 200 MB download)" */
  what: string;
}

/** Whether pip arguments choose the package index themselves (then charcode adds none). */
export function choosesIndex(args: string[]): boolean {
  return args.some(
    (a) => a === "--index-url" || a.startsWith("--index-url=") || a === "--no-index" || /^-i./.test(a) || a === "-i",
  );
}

function size(mb: number): string {
  return mb >= 1000 ? `about ${mb / 1000} GB` : `about ${mb} MB`;
}

export interface PlanInputs {
  platform: NodeJS.Platform;
  gpu: boolean;
  requirement: string;
  pipExtraArgs: string[];
}

export function torchPlan({ platform, gpu, requirement, pipExtraArgs }: PlanInputs): TorchPlan {
  if (platform === "linux" && gpu) {
    const mb = DOWNLOAD_MB.linuxCuda;
    return {
      build: "cuda",
      requirement,
      indexArgs: [],
      downloadMB: mb,
      what: `torch with CUDA for the NVIDIA GPU (${size(mb)} download, NVIDIA's libraries included)`,
    };
  }
  if (platform === "linux") {
    const mb = DOWNLOAD_MB.linuxCpu;
    const own = choosesIndex(pipExtraArgs);
    return {
      build: "cpu",
      requirement,
      indexArgs: own ? [] : ["--index-url", CPU_INDEX_URL],
      downloadMB: mb,
      what: `the CPU-only build of torch (${size(mb)} download, 700 MB installed${own ? "; from the index in charcode.pipExtraArgs" : ""})`,
    };
  }
  if (platform === "darwin") {
    const mb = DOWNLOAD_MB.mac;
    return { build: "default", requirement, indexArgs: [], downloadMB: mb, what: `torch (${size(mb)} download)` };
  }
  const mb = DOWNLOAD_MB.windows;
  return { build: "cpu", requirement, indexArgs: [], downloadMB: mb, what: `torch, its CPU build from PyPI (${size(mb)} download)` };
}

/** Arguments after the interpreter for installing the plan's torch. */
export function torchInstallArgs(plan: TorchPlan, pipExtraArgs: string[]): string[] {
  return [
    "-m",
    "pip",
    "install",
    "--disable-pip-version-check",
    "--no-input",
    ...plan.indexArgs,
    ...pipExtraArgs,
    plan.requirement,
  ];
}

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, "g");

export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

/** One frame of pip's download progress bar: "━━━╺━━━ 45.3/191.8 MB 52.1 MB/s eta 0:00:03". */
export interface BarReading {
  done: number;
  total: number;
  unit: "kB" | "MB" | "GB";
  rate?: string;
  eta?: string;
}

export function readPipBar(line: string): BarReading | undefined {
  const m = /^[^\w\s]+\s+(\d+(?:\.\d+)?)\/(\d+(?:\.\d+)?) (kB|MB|GB)(?: ([\d.]+ \S+\/s)| \?)?(?: eta (\S+))?\s*$/.exec(
    stripAnsi(line).trim(),
  );
  if (!m) {
    return undefined;
  }
  const eta = m[5] && /\d/.test(m[5]) ? m[5] : undefined;
  return { done: Number(m[1]), total: Number(m[2]), unit: m[3] as BarReading["unit"], rate: m[4], eta };
}

const MB_PER = { kB: 0.001, MB: 1, GB: 1000 } as const;

/** "https://.../torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl" -> "torch-2.13.0+cpu". */
function shortName(file: string): string {
  const base = file.split("/").pop() ?? file;
  let name = base;
  try {
    name = decodeURIComponent(base);
  } catch {
    // not URL-encoded
  }
  return name.split("-").slice(0, 2).join("-");
}

/** What the progress notification shows: a message, and how far the whole install moved (percent). */
export interface ProgressReport {
  message: string;
  increment?: number;
}

/**
 * Turns pip's output into progress reports: the file being downloaded, its
 * MB, speed and time left, and a bar over the whole download (`expectedMB`,
 * or the files' own sizes when they add up to more). At most one report per
 * percent of a file.
 */
export class PipProgress {
  private file = "";
  private finishedMB = 0;
  private currentMB = 0;
  private shown = 0;
  private filePercent = -1;

  constructor(private readonly expectedMB: number) {}

  line(raw: string): ProgressReport | undefined {
    const line = stripAnsi(raw).trim();
    const bar = readPipBar(line);
    if (bar) {
      const per = MB_PER[bar.unit];
      const filePercent = bar.total ? Math.floor((100 * bar.done) / bar.total) : 0;
      if (filePercent === this.filePercent) {
        return undefined;
      }
      this.filePercent = filePercent;
      this.currentMB = bar.done * per;
      const whole = Math.max(this.expectedMB, this.finishedMB + bar.total * per);
      const parts = [`${bar.done.toFixed(1)}/${bar.total.toFixed(1)} ${bar.unit}`, bar.rate, bar.eta ? `${bar.eta} left` : undefined];
      return this.report(
        `Downloading ${this.file || "torch"}: ${parts.filter(Boolean).join(", ")}`,
        (100 * (this.finishedMB + this.currentMB)) / whole,
      );
    }
    const download = /^Downloading (\S+)(?: \(([^)]*)\))?/.exec(line);
    if (download) {
      this.finishedMB += this.currentMB;
      this.currentMB = 0;
      this.filePercent = -1;
      this.file = shortName(download[1]);
      return this.report(`Downloading ${this.file}${download[2] ? ` (${download[2]})` : ""}`, this.shown);
    }
    const message = pipProgressMessage(line);
    if (!message) {
      return undefined;
    }
    return this.report(
      /^Installing collected packages/.test(message) ? `${message} (unpacking takes a while)` : message,
      this.shown,
    );
  }

  private report(message: string, percent: number): ProgressReport {
    const capped = Math.min(99, percent);
    const increment = capped > this.shown ? capped - this.shown : undefined;
    this.shown = Math.max(this.shown, capped);
    return increment ? { message, increment } : { message };
  }
}

/** Whether `python` imports torch, and its version. */
export interface TorchCheck {
  ok: boolean;
  version?: string;
  problem?: string;
}

export async function probeTorch(python: string, run: Run = spawnRun): Promise<TorchCheck> {
  // a real import, not find_spec: a half-installed torch (pip killed while unpacking) must count as none
  const r = await run(python, ["-c", "import sys, torch; sys.stdout.write(torch.__version__)"], { timeoutMs: 180_000 });
  if (r.code === 0) {
    return { ok: true, version: r.stdout.trim().split(/\r?\n/).pop() };
  }
  const last = r.stderr.trim().split(/\r?\n/).pop();
  return { ok: false, problem: r.code === null ? `${python} did not run (${r.error ?? "?"})` : (last ?? `exit code ${r.code}`) };
}

/** The user cancelled; pip was stopped. */
export class InstallCancelled extends Error {
  constructor() {
    super("installing torch was cancelled");
    this.name = "InstallCancelled";
  }
}

/** What to do about a failed `pip install` of torch, from its output. */
export function torchFailureHint(output: string, plan: TorchPlan): string {
  if (/externally-managed-environment/i.test(output)) {
    return "pip may not install into this Python (the system manages it): clear `charcode.pythonPath` to use charcode's private environment, or point it at a virtual environment.";
  }
  if (/No matching distribution found for torch|Could not find a version that satisfies the requirement torch/i.test(output)) {
    return `pip found no torch matching "${plan.requirement}" for this Python and platform: check \`charcode.torchRequirement\` and \`charcode.pipExtraArgs\`.`;
  }
  if (
    /NewConnectionError|Failed to establish a new connection|Could not resolve|Name or service not known|Temporary failure in name resolution|Max retries exceeded|ConnectTimeout|Read timed out|ProxyError|SSLError/i.test(
      output,
    )
  ) {
    const where = plan.indexArgs.length ? `PyTorch's index (${CPU_INDEX_URL})` : "the package index";
    return `pip could not reach ${where}: check the network or proxy (pip.conf), or point pip at a mirror or a folder of wheels with \`charcode.pipExtraArgs\` (an \`--index-url\` there replaces PyTorch's).`;
  }
  if (/No space left on device/i.test(output)) {
    return `The disk is full: torch takes ${plan.build === "cuda" ? "several GB" : "about 700 MB"} once installed.`;
  }
  return "Open Logs shows pip's full output; `charcode.torchRequirement` and `charcode.pipExtraArgs` set what pip installs and from where.";
}

export interface InstallTorchOptions {
  python: string;
  plan: TorchPlan;
  pipExtraArgs: string[];
  run?: Run;
  log?: Logger;
  onProgress?: (report: ProgressReport) => void;
  signal?: AbortSignal;
}

/**
 * `pip install`s the plan's torch into `python` and checks that it imports.
 * Returns torch's version; throws InstallCancelled or SetupError.
 *
 * A cancel kills pip. Serving never imports torch, so the interpreter serves
 * on; pip writes a wheel's dist-info last, so a torch cut off while unpacking
 * is not "installed" for pip, and the next install writes it again.
 */
export async function installTorch(options: InstallTorchOptions): Promise<string> {
  const run = options.run ?? spawnRun;
  const log = options.log ?? nullLogger;
  const args = torchInstallArgs(options.plan, options.pipExtraArgs);
  log.info(`Installing ${options.plan.what}: ${options.python} ${args.join(" ")}`);
  const progress = new PipProgress(options.plan.downloadMB);
  let loggedTenth = -1;
  const pip = await run(options.python, args, {
    timeoutMs: 2 * 60 * 60_000,
    signal: options.signal,
    // pip draws its download bar (rich) only on a terminal; FORCE_COLOR makes it draw here too
    env: { ...process.env, PIP_NO_INPUT: "1", PYTHONUNBUFFERED: "1", FORCE_COLOR: "1", COLUMNS: "120" },
    onLine: (raw) => {
      const line = stripAnsi(raw).trim();
      const bar = readPipBar(line);
      const tenth = bar && bar.total ? Math.floor((10 * bar.done) / bar.total) : -1;
      if (!bar || tenth !== loggedTenth) {
        log.info(`pip: ${line}`);
      }
      loggedTenth = bar ? tenth : -1;
      const report = progress.line(line);
      if (report) {
        options.onProgress?.(report);
      }
    },
  });
  if (options.signal?.aborted) {
    throw new InstallCancelled();
  }
  if (pip.code !== 0) {
    const output = stripAnsi(pip.stderr + pip.stdout);
    throw new SetupError(
      `pip could not install ${options.plan.requirement} into ${options.python} (${pip.error ?? `exit code ${pip.code}`}).`,
      torchFailureHint(output, options.plan),
      tail(output),
    );
  }
  options.onProgress?.({ message: "Checking that torch imports" });
  const check = await probeTorch(options.python, run);
  if (!check.ok) {
    throw new SetupError(
      `pip installed ${options.plan.requirement}, but torch does not import: ${check.problem ?? "?"}.`,
      "Open Logs shows pip's output; `charcode.torchRequirement` chooses another torch.",
    );
  }
  log.info(`torch ${check.version ?? "?"} is installed in ${options.python}`);
  return check.version ?? "?";
}

/** The notifications of the torch offer (vscode's in setup.ts, fakes in the tests). */
export interface TorchUi {
  /** Runs a short task (the torch check) with a busy indicator. */
  busy<T>(title: string, task: () => Promise<T>): Promise<T>;
  /** Offers `plan` (and `alternative`, when there is one) for `python`; the plan chosen, or undefined. */
  offer(python: string, plan: TorchPlan, alternative: TorchPlan | undefined): Promise<TorchPlan | undefined>;
  /**
   * Runs the install `task` under a cancellable progress notification
   * (`signal` aborts when the user cancels); resolves to torch's version.
   */
  progress(title: string, task: (report: (r: ProgressReport) => void, signal: AbortSignal) => Promise<string>): Promise<string>;
  /** Says torch is ready. */
  installed(message: string): void;
  /** Says the install was cancelled, and what that leaves. */
  cancelled(message: string): void;
  /** Shows a failure (with Open Logs); resolves true when the user asks to try again. */
  failed(error: SetupError): Promise<boolean>;
}

export interface EnsureTorchOptions {
  python: string;
  requirement: string;
  pipExtraArgs: string[];
  ui: TorchUi;
  run?: Run;
  log?: Logger;
  platform?: NodeJS.Platform;
  findGpu?: () => Promise<GpuCheck>;
}

export const CANCELLED_MESSAGE =
  "charcode: installing torch was cancelled. Completions go on without it; Train on Workspace offers it again.";

/**
 * True when `python` has torch: it had it, or the user accepted the offer and
 * it was installed. False when the user declined or cancelled, or it failed
 * (each said in a notification).
 */
export async function ensureTorch(options: EnsureTorchOptions): Promise<boolean> {
  const run = options.run ?? spawnRun;
  const log = options.log ?? nullLogger;
  const { python, ui } = options;
  const platform = options.platform ?? process.platform;

  // 1) torch there already?
  const have = await ui.busy("charcode: looking for torch", () => probeTorch(python, run));
  if (have.ok) {
    log.info(`${python} has torch ${have.version ?? "?"}`);
    return true;
  }
  log.info(`${python} has no usable torch (${have.problem ?? "?"}): offering to install it`);

  // 2) which build: CUDA only with an NVIDIA GPU
  const gpu = await (options.findGpu ?? (() => findNvidiaGpu(run, platform)))();
  log.info(`NVIDIA GPU ${gpu.found ? "found" : "not found"}: ${gpu.evidence}`);
  const inputs = { platform, requirement: options.requirement, pipExtraArgs: options.pipExtraArgs };
  const plan = torchPlan({ ...inputs, gpu: gpu.found });
  const alternative = plan.build === "cuda" ? torchPlan({ ...inputs, gpu: false }) : undefined;
  const chosen = await ui.offer(python, plan, alternative);
  if (!chosen) {
    log.info("Installing torch declined");
    return false;
  }

  // 3) install, as often as the user retries
  for (;;) {
    try {
      const version = await ui.progress(`charcode: installing ${chosen.requirement} for training`, (report, signal) =>
        installTorch({ python, plan: chosen, pipExtraArgs: options.pipExtraArgs, run, log, onProgress: report, signal }),
      );
      ui.installed(`charcode: torch ${version} is installed; training starts.`);
      return true;
    } catch (e) {
      if (e instanceof InstallCancelled) {
        const after = await probeTorch(python, run);
        log.warn(`Installing torch cancelled; pip stopped; torch ${after.ok ? `${after.version ?? "?"} imports` : `does not import (${after.problem ?? "?"})`}`);
        ui.cancelled(CANCELLED_MESSAGE);
        return false;
      }
      const error =
        e instanceof SetupError
          ? e
          : new SetupError(`Installing torch failed: ${errorMessage(e)}.`, "Open Logs shows what happened.");
      log.error(`${error.message} ${error.hint}`);
      if (error.details) {
        log.error(error.details);
      }
      if (!(await ui.failed(error))) {
        return false;
      }
    }
  }
}
