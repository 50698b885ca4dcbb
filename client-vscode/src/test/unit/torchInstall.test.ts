import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { SetupError } from "../../common/environmentCreation";
import type { Run, RunOptions, RunResult } from "../../common/processes";
import {
  choosesIndex,
  CPU_INDEX_URL,
  ensureTorch,
  findNvidiaGpu,
  type GpuCheck,
  installTorch,
  InstallCancelled,
  PipProgress,
  probeTorch,
  type ProgressReport,
  readPipBar,
  torchInstallArgs,
  torchPlan,
  type TorchPlan,
  type TorchUi,
} from "../../common/torchInstall";
import { ok } from "./fakes";

const ESC = String.fromCharCode(27);
/** Frames of pip 23's download bar as it prints them with FORCE_COLOR=1 (recorded). */
const BAR_START = `${ESC}[?25l     ${ESC}[90m━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━${ESC}[0m ${ESC}[32m0.0/13.1 MB${ESC}[0m ${ESC}[31m?${ESC}[0m eta ${ESC}[36m-:--:--${ESC}[0m`;
const BAR_MID = `${ESC}[2K     ${ESC}[91m━━━━━━━━━━━━━━${ESC}[0m${ESC}[90m╺${ESC}[0m${ESC}[90m━━━━━━━━━━━━━━━━━━━━━━━━━${ESC}[0m ${ESC}[32m4.6/13.1 MB${ESC}[0m ${ESC}[31m139.7 MB/s${ESC}[0m eta ${ESC}[36m0:00:01${ESC}[0m`;

/** A pip download bar frame for `done`/`total` MB. */
const bar = (done: number, total: number) => `   ━━━━━━━━╺━━━━━ ${done.toFixed(1)}/${total.toFixed(1)} MB 50.0 MB/s eta 0:00:02`;

const TORCH_PROBE = (args: string[]) => args[0] === "-c" && args[1].includes("import sys, torch");
const isPip = (args: string[]) => args[0] === "-m" && args[1] === "pip";
const NO_TORCH: RunResult = { code: 1, stdout: "", stderr: "Traceback...\nModuleNotFoundError: No module named 'torch'\n" };

/** A fake interpreter: torch imports once a pip install ran (unless `pip` says otherwise). */
function fakePython(pip: (args: string[], options?: RunOptions) => Promise<RunResult> | RunResult = () => ok("Successfully installed torch-2.13.0\n")) {
  let installed = false;
  const calls: { cmd: string; args: string[]; env?: NodeJS.ProcessEnv }[] = [];
  const run: Run = async (cmd, args, options) => {
    calls.push({ cmd, args, env: options?.env });
    if (cmd === "nvidia-smi") {
      return { code: null, stdout: "", stderr: "", error: "spawn nvidia-smi ENOENT" };
    }
    if (TORCH_PROBE(args)) {
      return installed ? ok("2.13.0+cpu") : NO_TORCH;
    }
    if (isPip(args)) {
      const result = await pip(args, options);
      for (const line of (result.stdout + result.stderr).split(/\r?\n|\r/)) {
        if (line.trim()) {
          options?.onLine?.(line);
        }
      }
      installed = installed || result.code === 0;
      return result;
    }
    return ok("");
  };
  return { run, calls, pipCalls: () => calls.filter((c) => isPip(c.args)) };
}

describe("GPU detection", () => {
  const smi = (result: RunResult) => {
    const calls: string[] = [];
    const run: Run = (cmd) => {
      calls.push(cmd);
      return Promise.resolve(result);
    };
    return { run, calls };
  };

  test("Linux: the driver's /proc entry is enough (nvidia-smi is not run)", async () => {
    const { run, calls } = smi(ok(""));
    const gpu = await findNvidiaGpu(run, "linux", (p) => p === "/proc/driver/nvidia/version");
    assert.equal(gpu.found, true);
    assert.deepEqual(calls, []);
  });

  test("Linux: nvidia-smi listing a GPU", async () => {
    const { run, calls } = smi(ok("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1234)\n"));
    const gpu = await findNvidiaGpu(run, "linux", () => false);
    assert.equal(gpu.found, true);
    assert.match(gpu.evidence, /NVIDIA H100/);
    assert.deepEqual(calls, ["nvidia-smi"]);
  });

  test("Linux: no driver, nvidia-smi missing, failing or listing nothing: no GPU", async () => {
    for (const result of [
      { code: null, stdout: "", stderr: "", error: "spawn nvidia-smi ENOENT" },
      { code: 9, stdout: "", stderr: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver" },
      ok("No devices found.\n"),
    ]) {
      const gpu = await findNvidiaGpu(smi(result).run, "linux", () => false);
      assert.equal(gpu.found, false, JSON.stringify(result));
      assert.match(gpu.evidence, /nvidia-smi/);
    }
  });

  test("macOS and Windows: not looked for (PyPI's torch is the one to install there)", async () => {
    for (const platform of ["darwin", "win32"] as const) {
      const { run, calls } = smi(ok("GPU 0: NVIDIA RTX 4090\n"));
      assert.equal((await findNvidiaGpu(run, platform, () => true)).found, false);
      assert.deepEqual(calls, []);
    }
  });
});

describe("which torch", () => {
  const plan = (platform: NodeJS.Platform, gpu: boolean, pipExtraArgs: string[] = []) =>
    torchPlan({ platform, gpu, requirement: "torch", pipExtraArgs });

  test("Linux without a GPU: the CPU-only build from PyTorch's CPU index, about 200 MB", () => {
    const p = plan("linux", false);
    assert.equal(p.build, "cpu");
    assert.deepEqual(p.indexArgs, ["--index-url", CPU_INDEX_URL]);
    assert.equal(p.downloadMB, 200);
    assert.match(p.what, /CPU-only build of torch \(about 200 MB download/);
  });

  test("Linux with an NVIDIA GPU: plain torch from PyPI (CUDA), about 3 GB", () => {
    const p = plan("linux", true);
    assert.equal(p.build, "cuda");
    assert.deepEqual(p.indexArgs, []);
    assert.match(p.what, /CUDA .*about 3 GB download/);
  });

  test("an index chosen in charcode.pipExtraArgs replaces PyTorch's; an extra index does not", () => {
    for (const args of [["--index-url", "https://m/simple"], ["--index-url=https://m/simple"], ["-i", "https://m"], ["--no-index", "--find-links", "/w"]]) {
      assert.equal(choosesIndex(args), true, args.join(" "));
      const p = plan("linux", false, args);
      assert.deepEqual(p.indexArgs, []);
      assert.match(p.what, /from the index in charcode\.pipExtraArgs/);
    }
    for (const args of [[], ["--extra-index-url", "https://e"], ["--find-links", "/w"], ["--isolated"]]) {
      assert.equal(choosesIndex(args), false, args.join(" "));
    }
  });

  test("macOS and Windows: PyPI's torch, no index", () => {
    assert.deepEqual(plan("darwin", false).indexArgs, []);
    assert.deepEqual(plan("win32", true).indexArgs, []);
    assert.match(plan("win32", true).what, /CPU build from PyPI \(about 200 MB/);
  });

  test("pip arguments: charcode's index, then charcode.pipExtraArgs (so they win), then the requirement", () => {
    const p = torchPlan({ platform: "linux", gpu: false, requirement: "torch==2.13.0", pipExtraArgs: [] });
    assert.deepEqual(torchInstallArgs(p, ["--find-links", "/w"]), [
      "-m",
      "pip",
      "install",
      "--disable-pip-version-check",
      "--no-input",
      "--index-url",
      CPU_INDEX_URL,
      "--find-links",
      "/w",
      "torch==2.13.0",
    ]);
  });
});

describe("pip's progress", () => {
  test("bar frames are read through the colour codes; other lines are not bars", () => {
    assert.deepEqual(readPipBar(BAR_START), { done: 0, total: 13.1, unit: "MB", rate: undefined, eta: undefined });
    assert.deepEqual(readPipBar(BAR_MID), { done: 4.6, total: 13.1, unit: "MB", rate: "139.7 MB/s", eta: "0:00:01" });
    assert.equal(readPipBar("  Downloading torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl (191.8 MB)"), undefined);
    assert.equal(readPipBar("Collecting torch==2.13.0"), undefined);
  });

  test("per file: MB, speed and time left; the bar runs over the whole download, one report per percent", () => {
    const progress = new PipProgress(200);
    const reports: ProgressReport[] = [];
    const feed = (line: string) => {
      const r = progress.line(line);
      if (r) {
        reports.push(r);
      }
    };
    feed("Collecting torch==2.13.0");
    feed("  Downloading https://download.pytorch.org/whl/cpu/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl (191.8 MB)");
    for (let mb = 0; mb <= 191.8; mb += 0.1) {
      feed(bar(mb, 191.8));
    }
    feed(bar(191.8, 191.8));
    feed("Collecting sympy>=1.13.3");
    feed("  Downloading sympy-1.14.0-py3-none-any.whl (6.3 MB)");
    feed(bar(3.1, 6.3));
    feed(bar(6.3, 6.3));
    feed(`${ESC}[?25hInstalling collected packages: mpmath, sympy, torch`);
    assert.equal(reports[0].message, "Collecting torch==2.13.0");
    assert.equal(reports[1].message, "Downloading torch-2.13.0+cpu (191.8 MB)");
    assert.ok(reports.some((r) => /^Downloading torch-2\.13\.0\+cpu: 9\d\.\d\/191\.8 MB, 50\.0 MB\/s, 0:00:02 left$/.test(r.message)));
    assert.ok(reports.some((r) => /^Downloading sympy-1\.14\.0: 3\.1\/6\.3 MB/.test(r.message)));
    assert.match(reports[reports.length - 1].message, /^Installing collected packages: mpmath, sympy, torch \(unpacking/);
    const bars = reports.filter((r) => /torch-2\.13\.0\+cpu:/.test(r.message));
    assert.ok(bars.length <= 101 && bars.length >= 90, `${bars.length} reports for one file`);
    const total = reports.reduce((sum, r) => sum + (r.increment ?? 0), 0);
    assert.ok(total > 95 && total <= 99, `the bar ends at ${total}%`);
    assert.ok(reports.every((r) => r.increment === undefined || r.increment > 0));
  });
});

describe("installing torch", () => {
  const cpuPlan = torchPlan({ platform: "linux", gpu: false, requirement: "torch==2.13.0", pipExtraArgs: [] });

  test("probing: a real import, its version or the error's last line", async () => {
    assert.deepEqual(await probeTorch("py", () => Promise.resolve(ok("2.13.0+cpu"))), { ok: true, version: "2.13.0+cpu" });
    assert.deepEqual(await probeTorch("py", () => Promise.resolve(NO_TORCH)), {
      ok: false,
      problem: "ModuleNotFoundError: No module named 'torch'",
    });
  });

  test("pip runs with its progress bar forced on; the progress and the version come back", async () => {
    const { run, pipCalls } = fakePython(() =>
      ok(`Collecting torch==2.13.0\n  Downloading torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl (191.8 MB)\n${bar(96, 191.8)}\nSuccessfully installed torch-2.13.0+cpu\n`),
    );
    const reports: ProgressReport[] = [];
    const version = await installTorch({ python: "/env/bin/python", plan: cpuPlan, pipExtraArgs: [], run, onProgress: (r) => reports.push(r) });
    assert.equal(version, "2.13.0+cpu");
    const [pip] = pipCalls();
    assert.deepEqual(pip.args, torchInstallArgs(cpuPlan, []));
    assert.equal(pip.env?.FORCE_COLOR, "1");
    assert.ok(reports.some((r) => /torch-2\.13\.0\+cpu: 96\.0\/191\.8 MB/.test(r.message) && (r.increment ?? 0) > 40));
    assert.equal(reports[reports.length - 1].message, "Checking that torch imports");
  });

  const failing = (stderr: string) => fakePython(() => ({ code: 1, stdout: "", stderr: `${ESC}[31mERROR: ${stderr}${ESC}[0m\n` }));

  test("pip's failures say what to do", async () => {
    const cases: [string, RegExp][] = [
      ["Could not find a version that satisfies the requirement torch==2.13.0 (from versions: none)", /charcode\.torchRequirement/],
      [
        "Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(\"Failed to establish a new connection: [Errno -3] Temporary failure in name resolution\")'",
        /could not reach PyTorch's index \(https:\/\/download\.pytorch\.org\/whl\/cpu\).*charcode\.pipExtraArgs/,
      ],
      ["externally-managed-environment", /clear `charcode\.pythonPath`/],
      ["No space left on device", /disk is full/],
      ["something else", /Open Logs/],
    ];
    for (const [stderr, hint] of cases) {
      await assert.rejects(
        installTorch({ python: "/usr/bin/python3", plan: cpuPlan, pipExtraArgs: [], run: failing(stderr).run }),
        (e: unknown) =>
          e instanceof SetupError &&
          /pip could not install torch==2\.13\.0 into \/usr\/bin\/python3 \(exit code 1\)/.test(e.message) &&
          hint.test(e.hint) &&
          e.details.includes(stderr) &&
          !e.details.includes(ESC),
      );
    }
  });

  test("torch installed but not importing is an error too", async () => {
    const run: Run = (_cmd, args) => Promise.resolve(isPip(args) ? ok("") : { code: 1, stdout: "", stderr: "OSError: libtorch_cpu.so: cannot open shared object file" });
    await assert.rejects(
      installTorch({ python: "py", plan: cpuPlan, pipExtraArgs: [], run }),
      (e: unknown) => e instanceof SetupError && /does not import: OSError: libtorch_cpu\.so/.test(e.message),
    );
  });

  test("a cancel kills pip (through the signal) and says so", async () => {
    const abort = new AbortController();
    const { run } = fakePython(
      (_args, options) =>
        new Promise((resolve) => {
          options?.signal?.addEventListener("abort", () => resolve({ code: null, stdout: "", stderr: "", error: "cancelled" }));
          options?.onLine?.("Collecting torch==2.13.0");
        }),
    );
    const done = installTorch({ python: "py", plan: cpuPlan, pipExtraArgs: [], run, signal: abort.signal });
    abort.abort();
    await assert.rejects(done, (e: unknown) => e instanceof InstallCancelled);
  });
});

describe("the offer (Train on Workspace without torch)", () => {
  type Choice = "plan" | "alternative" | undefined;

  /** A fake UI that answers the offer with `choice` and a failure with `retry` (then false). */
  function fakeUi(choice: Choice, retries: boolean[] = []) {
    const events: string[] = [];
    const offers: { plan: TorchPlan; alternative?: TorchPlan }[] = [];
    let cancelOnStart = false;
    const ui: TorchUi = {
      busy: (_title, task) => task(),
      offer: (_python, plan, alternative) => {
        offers.push({ plan, alternative });
        events.push("offer");
        return Promise.resolve(choice === "plan" ? plan : choice === "alternative" ? alternative : undefined);
      },
      progress: (title, task) => {
        events.push(`progress: ${title}`);
        const abort = new AbortController();
        if (cancelOnStart) {
          setTimeout(() => abort.abort(), 5);
        }
        return task((r) => events.push(`report: ${r.message}`), abort.signal);
      },
      installed: (m) => events.push(`installed: ${m}`),
      cancelled: (m) => events.push(`cancelled: ${m}`),
      failed: (e) => {
        events.push(`failed: ${e.message}`);
        return Promise.resolve(retries.shift() ?? false);
      },
    };
    return { ui, events, offers, cancelNextInstall: () => (cancelOnStart = true) };
  }

  const noGpu = (): Promise<GpuCheck> => Promise.resolve({ found: false, evidence: "test" });
  const gpu = (): Promise<GpuCheck> => Promise.resolve({ found: true, evidence: "test" });
  const base = { python: "/gs/python-env/bin/python", requirement: "torch", pipExtraArgs: [], platform: "linux" as const };

  test("torch already there: no offer, training goes on", async () => {
    const run: Run = () => Promise.resolve(ok("2.13.0+cpu"));
    const { ui, events } = fakeUi("plan");
    assert.equal(await ensureTorch({ ...base, ui, run, findGpu: noGpu }), true);
    assert.deepEqual(events, []);
  });

  test("no torch, no GPU: offers the CPU build; accepted, pip installs it and training goes on", async () => {
    const { run, pipCalls } = fakePython();
    const { ui, events, offers } = fakeUi("plan");
    assert.equal(await ensureTorch({ ...base, ui, run, findGpu: noGpu }), true);
    assert.equal(offers.length, 1);
    assert.equal(offers[0].plan.build, "cpu");
    assert.equal(offers[0].alternative, undefined);
    assert.deepEqual(pipCalls()[0].args, torchInstallArgs(offers[0].plan, []));
    assert.ok(events.includes("progress: charcode: installing torch for training"));
    assert.equal(events[events.length - 1], "installed: charcode: torch 2.13.0+cpu is installed; training starts.");
  });

  test("with a GPU: offers CUDA torch, and the CPU build instead", async () => {
    const { run, pipCalls } = fakePython();
    const { ui, offers } = fakeUi("alternative");
    assert.equal(await ensureTorch({ ...base, ui, run, findGpu: gpu }), true);
    assert.equal(offers[0].plan.build, "cuda");
    assert.equal(offers[0].alternative?.build, "cpu");
    assert.ok(pipCalls()[0].args.includes(CPU_INDEX_URL));
  });

  test("declined: no pip, no training", async () => {
    const { run, pipCalls } = fakePython();
    const { ui, events } = fakeUi(undefined);
    assert.equal(await ensureTorch({ ...base, ui, run, findGpu: noGpu }), false);
    assert.equal(pipCalls().length, 0);
    assert.deepEqual(events, ["offer"]);
  });

  test("cancelled: pip is stopped, the user is told completions go on, no training", async () => {
    const { run, calls } = fakePython(
      (_args, options) =>
        new Promise((resolve) => {
          options?.signal?.addEventListener("abort", () => resolve({ code: null, stdout: "", stderr: "", error: "cancelled" }));
        }),
    );
    const { ui, events, cancelNextInstall } = fakeUi("plan");
    cancelNextInstall();
    assert.equal(await ensureTorch({ ...base, ui, run, findGpu: noGpu }), false);
    assert.match(events[events.length - 1], /^cancelled: charcode: installing torch was cancelled\. Completions go on without it/);
    // torch was looked for again after the cancel (and is still missing)
    assert.equal(calls.filter((c) => TORCH_PROBE(c.args)).length, 2);
  });

  test("a failure offers Retry: retried, the second install works", async () => {
    let attempt = 0;
    const { run, pipCalls } = fakePython(() =>
      ++attempt === 1 ? { code: 1, stdout: "", stderr: "ERROR: Read timed out." } : ok("Successfully installed torch-2.13.0\n"),
    );
    const { ui, events } = fakeUi("plan", [true]);
    assert.equal(await ensureTorch({ ...base, ui, run, findGpu: noGpu }), true);
    assert.equal(pipCalls().length, 2);
    assert.equal(events.filter((e) => e === "offer").length, 1, "a retry does not ask again");
    assert.ok(events.some((e) => /^failed: pip could not install torch/.test(e)));
  });

  test("a failure not retried: no training", async () => {
    const { run } = fakePython(() => ({ code: 1, stdout: "", stderr: "ERROR: boom" }));
    const { ui } = fakeUi("plan", [false]);
    assert.equal(await ensureTorch({ ...base, ui, run, findGpu: noGpu }), false);
  });
});
