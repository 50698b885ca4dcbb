import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { describe, test } from "node:test";

import {
  candidateList,
  describeFailure,
  parseProbe,
  pythonExtensionInterpreter,
  type Probe,
  probeInterpreter,
  resolveInterpreter,
  shortFailure,
} from "../../common/interpreterDiscovery";
import { ok, probeJson } from "./fakes";

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
    const p = probeOf("python3", { charcode: false, pygls: false, torch: false });
    assert.equal(p.ok, false);
    assert.deepEqual(p.missing, ["charcode", "pygls"]);
    assert.equal(p.problem, "Python 3.11.7 lacks charcode, pygls");
  });

  test("serving needs no torch: an interpreter without it is used, and noted as such", () => {
    const p = probeOf("python3", { torch: false });
    assert.equal(p.ok, true);
    assert.equal(p.torch, false);
    assert.deepEqual(p.missing, []);
    assert.equal(probeOf("python3").torch, true);
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
    assert.equal(shortFailure(r), "python3: Python 3.11.7 lacks charcode");
    assert.equal(shortFailure(undefined), "no interpreter found");
    assert.equal(
      describeFailure(r),
      "No Python with charcode was found. Tried python3 (python3 on PATH): Python 3.11.7 lacks charcode.",
    );
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
