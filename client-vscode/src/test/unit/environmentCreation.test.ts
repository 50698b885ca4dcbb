import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";

import {
  createPrivateEnvironment,
  findWheel,
  pipInstallArgs,
  pipProgressMessage,
  SetupError,
  venvPython,
} from "../../common/environmentCreation";
import type { Run, RunResult } from "../../common/processes";
import { ok, probeJson } from "./fakes";

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

  test("pip installs the wheel alone (no torch), with extra arguments first", () => {
    assert.deepEqual(pipInstallArgs("/x/charcode.whl", ["--extra-index-url", "https://e"]), [
      "-m",
      "pip",
      "install",
      "--disable-pip-version-check",
      "--no-input",
      "--extra-index-url",
      "https://e",
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
        return ok("Collecting numpy>=1.24\nSuccessfully installed charcode-0.1.0 numpy-2.4.6\n");
      }
      return ok("");
    });
    const probe = await createPrivateEnvironment({
      basePythons: ["/old/python", "python3"],
      envDir,
      wheel: "/ext/bundled/charcode-0.1.0-py3-none-any.whl",
      pipExtraArgs: [],
      run,
      onStep: (m) => steps.push(m),
    });
    assert.equal(probe.ok, true);
    const actions = calls.filter((c) => !isProbe(c.slice(1)));
    assert.deepEqual(actions, [
      ["/usr/bin/python3", "-m", "venv", envDir],
      [python, ...pipInstallArgs("/ext/bundled/charcode-0.1.0-py3-none-any.whl", [])],
    ]);
    assert.ok(steps.includes("Collecting numpy>=1.24"));
    assert.ok(!calls.some((c) => c.some((a) => /^torch/.test(a))), "no torch at environment creation");
    assert.match(steps[steps.length - 1], /^Ready/);
  });

  test("no base interpreter: says how to get one", async () => {
    const { run } = fakeRun(() => ({ code: null, stdout: "", stderr: "", error: "ENOENT" }));
    await assert.rejects(
      createPrivateEnvironment({ basePythons: ["python3"], envDir: "/tmp/x", wheel: "w", pipExtraArgs: [], run }),
      (e: unknown) => e instanceof SetupError && /python3: not found/.test(e.message) && /python3-venv/.test(e.hint),
    );
  });

  test("pip finding no dependency names it and points at the index settings", async () => {
    const envDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "charcode-env-")), "python-env");
    const { run } = fakeRun((_cmd, args) => {
      if (isProbe(args)) {
        return ok(probeJson({ charcode: false }));
      }
      if (args[1] === "pip") {
        return { code: 1, stdout: "", stderr: "ERROR: No matching distribution found for pygls<3,>=2.0\n" };
      }
      return ok("");
    });
    await assert.rejects(
      createPrivateEnvironment({ basePythons: ["python3"], envDir, wheel: "w", pipExtraArgs: [], run }),
      (e: unknown) =>
        e instanceof SetupError &&
        /no pygls<3,>=2\.0/.test(e.hint) &&
        /charcode\.pipExtraArgs/.test(e.hint) &&
        /No matching distribution/.test(e.details),
    );
  });

  test("a failing venv module says what to install", async () => {
    const envDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "charcode-env-")), "python-env");
    const { run } = fakeRun((_cmd, args) =>
      isProbe(args) ? ok(probeJson({ charcode: false })) : { code: 1, stdout: "", stderr: "ensurepip is not available" },
    );
    await assert.rejects(
      createPrivateEnvironment({ basePythons: ["python3"], envDir, wheel: "w", pipExtraArgs: [], run }),
      (e: unknown) => e instanceof SetupError && /python3-venv/.test(e.hint) && /ensurepip/.test(e.details),
    );
  });
});