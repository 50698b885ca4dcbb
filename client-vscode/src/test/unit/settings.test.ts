import assert from "node:assert/strict";
import { describe, test } from "node:test";

import manifest from "../../../package.json";
import {
  classifyChange,
  type ConfigurationLike,
  didChangeConfigurationSettings,
  expandPath,
  KEYS,
  readSettings,
  serverSettings,
} from "../../common/settings";

/** A configuration that returns package.json defaults, overridden by `values`. */
function config(values: Record<string, unknown> = {}): ConfigurationLike {
  const properties = manifest.contributes.configuration.properties as Record<string, { default: unknown }>;
  return {
    get<T>(key: string): T | undefined {
      if (key in values) {
        return values[key] as T;
      }
      return properties[`charcode.${key}`]?.default as T | undefined;
    },
  };
}

const vars = { workspaceFolder: "/ws", home: "/home/u", env: { MODELS: "/m" } };

describe("settings", () => {
  test("package.json is the single source: every declared setting is read, nothing else", () => {
    const declared = Object.keys(manifest.contributes.configuration.properties).sort();
    const read = Object.values(KEYS)
      .map((k) => `charcode.${k}`)
      .sort();
    assert.deepEqual(read, declared);
  });

  test("no setting is machine-scoped; untrusted workspaces cannot choose what runs", () => {
    // machine scopes are read from the remote machine's settings in remote windows
    // (code-server, SSH): user values got lost after the first settings write
    const properties = manifest.contributes.configuration.properties as Record<string, { scope: string }>;
    for (const [key, schema] of Object.entries(properties)) {
      assert.equal(schema.scope, "window", key);
    }
    assert.deepEqual(manifest.capabilities.untrustedWorkspaces.restrictedConfigurations.sort(), [
      "charcode.modelsDir",
      "charcode.models",
      "charcode.pipExtraArgs",
      "charcode.pythonPath",
      "charcode.torchRequirement",
    ].sort());
  });

  test("defaults come from package.json", () => {
    const { settings, problems } = readSettings(config(), vars);
    assert.deepEqual(problems, []);
    assert.equal(settings.enable, true);
    assert.equal(settings.device, "auto");
    assert.equal(settings.pythonPath, "");
    assert.equal(settings.torchRequirement, "torch");
    assert.ok(settings.languages.includes("python"));
    assert.equal(settings.traceServer, "off");
  });

  test("a configuration that returns nothing still yields the defaults", () => {
    const { settings, problems } = readSettings({ get: () => undefined }, vars);
    assert.deepEqual(problems, []);
    assert.equal(settings.inlineMaxLength, 80);
  });

  const invalid: [string, unknown][] = [
    ["enable", "yes"],
    ["device", "tpu"],
    ["temperature", -1],
    ["temperature", "hot"],
    ["inlineMaxLength", 12.5],
    ["inlineMaxLength", 0],
    ["debounce", 99999],
    ["languages", "python"],
    ["languages", ["python", 3]],
    ["models", { python: 1 }],
    ["models", ["a"]],
    ["pipExtraArgs", "--pre"],
  ];
  for (const [key, value] of invalid) {
    test(`invalid ${key}=${JSON.stringify(value)} falls back to the default and is reported`, () => {
      const { settings, problems } = readSettings(config({ [key]: value }), vars);
      const defaults = readSettings(config(), vars).settings;
      assert.equal(problems.length, 1);
      assert.match(problems[0], new RegExp(`^charcode\\.${key}: expected`));
      const field = Object.entries(KEYS).find(([, k]) => k === key)?.[0] as keyof typeof settings;
      assert.deepEqual(settings[field], defaults[field]);
    });
  }

  test("values VS Code hands out as proxies are copied, not cloned", () => {
    // VS Code's configuration objects are read-only proxies; structuredClone throws on them
    const proxy = <T extends object>(v: T) => new Proxy(v, {});
    const { settings, problems } = readSettings(
      config({ languages: proxy(["python"]), models: proxy({ python: "/m.safetensors" }) }),
      vars,
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(settings.languages, ["python"]);
    assert.deepEqual(settings.models, { python: "/m.safetensors" });
  });

  test("paths expand ~, ${workspaceFolder}, ${userHome} and ${env:X}", () => {
    const { settings } = readSettings(
      config({
        pythonPath: "${workspaceFolder}/.venv/bin/python",
        modelsDir: "~/models",
        models: { python: "${env:MODELS}/py.safetensors", c: "${userHome}/c.safetensors" },
      }),
      vars,
    );
    assert.equal(settings.pythonPath, "/ws/.venv/bin/python");
    assert.equal(settings.modelsDir, "/home/u/models");
    assert.deepEqual(settings.models, { python: "/m/py.safetensors", c: "/home/u/c.safetensors" });
    assert.equal(expandPath("~", vars), "/home/u");
    assert.equal(expandPath("  /abs/python  ", vars), "/abs/python");
  });

  test("languages are trimmed and de-duplicated; an empty torch requirement means torch", () => {
    const { settings } = readSettings(config({ languages: [" python", "python", "", "c"], torchRequirement: "  " }), vars);
    assert.deepEqual(settings.languages, ["python", "c"]);
    assert.equal(settings.torchRequirement, "torch");
  });

  test("the server gets exactly the contract's keys; an empty modelsDir is null", () => {
    const { settings } = readSettings(config({ temperature: 0.5, device: "cpu" }), vars);
    assert.deepEqual(serverSettings(settings), {
      enable: true,
      languages: settings.languages,
      modelsDir: null,
      device: "cpu",
      temperature: 0.5,
      inlineMaxLength: 80,
      inlineMaxLines: 1,
      inlineMinProbability: 0.5,
      adaptation: true,
      adaptationMemoryMB: 64,
      models: {},
    });
    const changed = didChangeConfigurationSettings(readSettings(config({ modelsDir: "/models" }), vars).settings);
    assert.deepEqual(Object.keys(changed), ["charcode"]);
    assert.equal(changed.charcode.modelsDir, "/models");
    assert.ok(!("pythonPath" in changed.charcode));
    assert.ok(!("debounce" in changed.charcode));
  });

  test("change classification: interpreter and languages restart, server settings notify, others neither", () => {
    const affects = (...keys: string[]) => (section: string) =>
      section === "charcode" ? keys.length > 0 : keys.some((k) => section === `charcode.${k}`);
    assert.deepEqual(classifyChange(affects("pythonPath")), { restart: true, notifyServer: false, any: true });
    assert.deepEqual(classifyChange(affects("languages")), { restart: true, notifyServer: true, any: true });
    assert.deepEqual(classifyChange(affects("temperature")), { restart: false, notifyServer: true, any: true });
    assert.deepEqual(classifyChange(affects("modelsDir", "device")), { restart: false, notifyServer: true, any: true });
    assert.deepEqual(classifyChange(affects("debounce")), { restart: false, notifyServer: false, any: true });
    assert.deepEqual(classifyChange(affects("adaptation")), { restart: false, notifyServer: true, any: true });
    assert.deepEqual(classifyChange(affects()), { restart: false, notifyServer: false, any: false });
  });
});
