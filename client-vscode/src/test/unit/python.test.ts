import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";

import {
  candidateList,
  createPrivateEnvironment,
  describeFailure,
  findWheel,
  parseProbe,
  pipInstallArgs,
  pipProgressMessage,
  pythonExtensionInterpreter,
  type Probe,
  probeInterpreter,
  resolveInterpreter,
  type Run,
  type RunResult,
  SetupError,
  shortFailure,
  spawnRun,
  venvPython,
} from "../../common/python";

const probeJson = (fields: Record<string, unknown> = {}) =>
  JSON.stringify({
    executable: "/usr/bin/python3",
    version: [3, 11, 7],
    charcode: true,
    torch: true,
    pygls: true,
    venv: true,
    charcodeVersion: "0.1.0",
    ...fields,
  });

const ok = (stdout: string): RunResult => ({ code: 0, stdout, stderr: "" });

function probeOf(python: string, fields: Record<string, unknown> = {}): Probe {
  return parseProbe(python, ok(probeJson(fields)));
}

describe("interpreter candidates", () => {
  test("setting, else Python extension, private environment, python3 on PATH", () => {
    assert.deepEqual(
      candidateList({ setting: "", pythonExtension: "/env/bin/python", privateEnv: "/gs/python-env/bin/python", pathPython: "python3" }),
      [
        { source: "pythonExtension", python: "/env/bin/python" },
        { source: "privateEnv", python: "/gs/python-env/bin/python" },
        { source: "path", python: "python3" },
      ],
    );
  });

  test("an explicit setting is the only candidate", () => {
    assert.deepEqual(candidateList({ setting: "/my/python", pythonExtension: "/env/bin/python", pathPython: "python3" }), [
      { source: "setting", python: "/my/python" },
    ]);
  });

  test("without the Python extension or a private environment: python3", () => {
    assert.deepEqual(candidateList({ setting: "", pathPython: "python3" }), [{ source: "path", python: "python3" }]);
  });

  test("duplicates are probed once", () => {
    assert.deepEqual(candidateList({ setting: "", pythonExtension: "python3", pathPython: "python3" }), [
      { source: "pythonExtension", python: "python3" },
    ]);
  });
});

describe("the Python extension's interpreter (vscode API injected)", () => {
  type Api = Parameters<typeof pythonExtensionInterpreter>[0];
  const api = (extension: unknown) => ({ extensions: { getExtension: () => extension } }) as unknown as Api;

  test("absent extension: undefined", async () => {
    assert.equal(await pythonExtensionInterpreter(api(undefined)), undefined);
  });

  test("the active environment, resolved to its executable", async () => {
    const exports = {
      environments: {
        getActiveEnvironmentPath: () => ({ path: "/envs/a" }),
        resolveEnvironment: (env: { path: string }) =>
          Promise.resolve({ executable: { uri: { fsPath: `${env.path}/bin/python` } } }),
      },
    };
    let activated = false;
    const extension = {
      isActive: false,
      exports: undefined,
      activate: () => {
        activated = true;
        return Promise.resolve(exports);
      },
    };
    assert.equal(await pythonExtensionInterpreter(api(extension)), "/envs/a/bin/python");
    assert.equal(activated, true);
  });

  test("the older settings API", async () => {
    const extension = {
      isActive: true,
      exports: { settings: { getExecutionDetails: () => ({ execCommand: ["/usr/bin/python3.12"] }) } },
    };
    assert.equal(await pythonExtensionInterpreter(api(extension)), "/usr/bin/python3.12");
  });

  test("a failing extension is logged and ignored", async () => {
    const warnings: string[] = [];
    const extension = { isActive: false, activate: () => Promise.reject(new Error("boom")) };
    const log = { info: () => undefined, warn: (m: string) => warnings.push(m), error: () => undefined, debug: () => undefined };
    assert.equal(await pythonExtensionInterpreter(api(extension), undefined, log), undefined);
    assert.match(warnings[0], /boom/);
  });
});

describe("probe", () => {
  test("a complete interpreter is ok", () => {
    const p = probeOf("python3");
    assert.equal(p.ok, true);
    assert.equal(p.version, "3.11.7");
    assert.equal(p.charcodeVersion, "0.1.0");
    assert.deepEqual(p.missing, []);
    assert.equal(p.canCreateVenv, true);
  });

  test("missing modules are named", () => {
    const p = probeOf("python3", { charcode: false, torch: false });
    assert.equal(p.ok, false);
    assert.deepEqual(p.missing, ["charcode", "torch"]);
    assert.equal(p.problem, "Python 3.11.7 lacks charcode, torch");
  });

  test("too old a Python is refused, also as a venv base", () => {
    const p = probeOf("python3", { version: [3, 8, 10] });
    assert.equal(p.ok, false);
    assert.equal(p.canCreateVenv, false);
    assert.match(p.problem ?? "", /too old/);
  });

  test("a missing interpreter, a crash and garbage output", () => {
    assert.equal(parseProbe("nope", { code: null, stdout: "", stderr: "", error: "spawn nope ENOENT" }).problem, "not found");
    assert.equal(
      parseProbe("py", { code: 1, stdout: "", stderr: "Traceback\nSyntaxError: bad" }).problem,
      "exited with code 1: SyntaxError: bad",
    );
    assert.match(parseProbe("py", ok("hello")).problem ?? "", /unexpected output/);
  });

  test("the probe script runs on a real python3", { skip: !hasPython3() && "no python3 on PATH" }, async () => {
    const p = await probeInterpreter("python3");
    assert.match(p.version ?? "", /^3\.\d+\.\d+$/);
    assert.ok(p.executable && path.isAbsolute(p.executable));
  });

  test("a nonexistent interpreter is reported, not thrown", async () => {
    const p = await probeInterpreter("/nonexistent/python3");
    assert.equal(p.ok, false);
    assert.equal(p.problem, "not found");
  });
});

describe("resolution", () => {
  test("the first interpreter with charcode wins; earlier failures are kept", async () => {
    const probes: Record<string, Probe> = {
      "/env/bin/python": probeOf("/env/bin/python", { charcode: false }),
      python3: probeOf("python3"),
    };
    const r = await resolveInterpreter(candidateList({ setting: "", pythonExtension: "/env/bin/python" }), (p) =>
      Promise.resolve(probes[p]),
    );
    assert.equal(r.found?.candidate.python, "python3");
    assert.equal(r.tried.length, 2);
  });

  test("none works: the failure names each candidate and its problem", async () => {
    const r = await resolveInterpreter(candidateList({ setting: "", pathPython: "python3" }), (p) =>
      Promise.resolve(probeOf(p, { charcode: false, torch: false })),
    );
    assert.equal(r.found, undefined);
    assert.equal(shortFailure(r), "python3: Python 3.11.7 lacks charcode, torch");
    assert.equal(shortFailure(undefined), "no interpreter found");
    assert.equal(
      describeFailure(r),
      "No Python with charcode and torch was found. Tried python3 (python3 on PATH): Python 3.11.7 lacks charcode, torch.",
    );
  });
});

describe("private environment", () => {
  test("venv interpreter paths per platform", () => {
    assert.equal(venvPython("/gs/env", "linux"), path.join("/gs/env", "bin", "python"));
    assert.equal(venvPython("/gs/env", "win32"), path.join("/gs/env", "Scripts", "python.exe"));
  });

  test("the newest bundled wheel is found", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "charcode-wheel-"));
    assert.equal(findWheel(dir), undefined);
    for (const name of ["charcode-0.9.0-py3-none-any.whl", "charcode-0.10.0-py3-none-any.whl", "other-1.0.whl"]) {
      fs.writeFileSync(path.join(dir, name), "");
    }
    assert.equal(findWheel(dir), path.join(dir, "charcode-0.10.0-py3-none-any.whl"));
    assert.equal(findWheel(path.join(dir, "missing")), undefined);
  });

  test("pip installs the torch requirement and the wheel, with extra arguments first", () => {
    assert.deepEqual(pipInstallArgs("/x/charcode.whl", "torch==2.13.0", ["--extra-index-url", "https://e"]), [
      "-m",
      "pip",
      "install",
      "--disable-pip-version-check",
      "--no-input",
      "--extra-index-url",
      "https://e",
      "torch==2.13.0",
      "/x/charcode.whl",
    ]);
  });

  test("pip output becomes short progress messages", () => {
    assert.equal(pipProgressMessage("Collecting torch==2.13.0"), "Collecting torch==2.13.0");
    assert.equal(pipProgressMessage("  Downloading numpy-2.4.6.whl (16 MB)"), "Downloading numpy-2.4.6.whl (16 MB)");
    assert.equal(pipProgressMessage("Installing collected packages: a, b"), "Installing collected packages: a, b");
    assert.equal(pipProgressMessage("   ━━━━━━━━ 1.2/16 MB"), undefined);
  });

  function fakeRun(script: (cmd: string, args: string[]) => RunResult): { run: Run; calls: string[][] } {
    const calls: string[][] = [];
    const run: Run = (cmd, args, options) => {
      calls.push([cmd, ...args]);
      const result = script(cmd, args);
      for (const line of result.stdout.split("\n")) {
        if (line) {
          options?.onLine?.(line);
        }
      }
      return Promise.resolve(result);
    };
    return { run, calls };
  }

  const isProbe = (args: string[]) => args[0] === "-c";

  test("creates a venv from the first usable base, installs, and checks the result", async () => {
    const envDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "charcode-env-")), "python-env");
    const python = venvPython(envDir);
    const steps: string[] = [];
    const { run, calls } = fakeRun((cmd, args) => {
      if (isProbe(args)) {
        if (cmd === "/old/python") {
          return ok(probeJson({ version: [3, 8, 0], charcode: false }));
        }
        if (cmd === python) {
          return ok(probeJson({ executable: python }));
        }
        return ok(probeJson({ executable: "/usr/bin/python3", charcode: false, torch: false }));
      }
      if (args[1] === "pip") {
        return ok("Collecting torch==2.13.0\nSuccessfully installed charcode-0.1.0 torch-2.13.0\n");
      }
      return ok("");
    });
    const probe = await createPrivateEnvironment({
      basePythons: ["/old/python", "python3"],
      envDir,
      wheel: "/ext/bundled/charcode-0.1.0-py3-none-any.whl",
      torchRequirement: "torch==2.13.0",
      pipExtraArgs: [],
      run,
      onStep: (m) => steps.push(m),
    });
    assert.equal(probe.ok, true);
    const actions = calls.filter((c) => !isProbe(c.slice(1)));
    assert.deepEqual(actions, [
      ["/usr/bin/python3", "-m", "venv", envDir],
      [python, ...pipInstallArgs("/ext/bundled/charcode-0.1.0-py3-none-any.whl", "torch==2.13.0", [])],
    ]);
    assert.ok(steps.includes("Collecting torch==2.13.0"));
    assert.match(steps[steps.length - 1], /^Ready/);
  });

  test("no base interpreter: says how to get one", async () => {
    const { run } = fakeRun(() => ({ code: null, stdout: "", stderr: "", error: "ENOENT" }));
    await assert.rejects(
      createPrivateEnvironment({ basePythons: ["python3"], envDir: "/tmp/x", wheel: "w", torchRequirement: "torch", pipExtraArgs: [], run }),
      (e: unknown) => e instanceof SetupError && /python3: not found/.test(e.message) && /python3-venv/.test(e.hint),
    );
  });

  test("pip failing on torch points at charcode.torchRequirement", async () => {
    const envDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "charcode-env-")), "python-env");
    const { run } = fakeRun((_cmd, args) => {
      if (isProbe(args)) {
        return ok(probeJson({ charcode: false }));
      }
      if (args[1] === "pip") {
        return { code: 1, stdout: "", stderr: "ERROR: No matching distribution found for torch==9.9\n" };
      }
      return ok("");
    });
    await assert.rejects(
      createPrivateEnvironment({ basePythons: ["python3"], envDir, wheel: "w", torchRequirement: "torch==9.9", pipExtraArgs: [], run }),
      (e: unknown) =>
        e instanceof SetupError && /charcode\.torchRequirement/.test(e.hint) && /No matching distribution/.test(e.details),
    );
  });

  test("a failing venv module says what to install", async () => {
    const envDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "charcode-env-")), "python-env");
    const { run } = fakeRun((_cmd, args) =>
      isProbe(args) ? ok(probeJson({ charcode: false })) : { code: 1, stdout: "", stderr: "ensurepip is not available" },
    );
    await assert.rejects(
      createPrivateEnvironment({ basePythons: ["python3"], envDir, wheel: "w", torchRequirement: "torch", pipExtraArgs: [], run }),
      (e: unknown) => e instanceof SetupError && /python3-venv/.test(e.hint) && /ensurepip/.test(e.details),
    );
  });
});

describe("spawnRun", () => {
  test("streams lines and reports the exit code", async () => {
    const lines: string[] = [];
    const r = await spawnRun(process.execPath, ["-e", "console.log('a\\nb'); console.error('c'); process.exit(3)"], {
      onLine: (l) => lines.push(l),
    });
    assert.equal(r.code, 3);
    assert.deepEqual(lines.sort(), ["a", "b", "c"]);
  });

  test("a timeout kills the process", async () => {
    const r = await spawnRun(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { timeoutMs: 200 });
    assert.equal(r.code, null);
    assert.match(r.error ?? "", /timed out/);
  });

  test("an abort signal kills the process", async () => {
    const abort = new AbortController();
    const running = spawnRun(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { signal: abort.signal });
    abort.abort();
    const r = await running;
    assert.equal(r.error, "cancelled");
  });
});

function hasPython3(): boolean {
  try {
    execFileSync("python3", ["-c", "pass"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
