/**
 * Settings: package.json `contributes.configuration` is the single source of
 * the setting names, types, ranges and defaults. This module reads the
 * `charcode.*` section, validates every value against that schema (an invalid
 * value falls back to the default and is reported, never thrown), expands
 * variables in paths, and derives what the language server receives.
 *
 * No runtime `vscode` import: callers pass `workspace.getConfiguration("charcode")`
 * (or any object with `get`), so the unit tests run under plain node.
 */
import * as os from "os";
import * as path from "path";

import manifest from "../../package.json";

export const SECTION = "charcode";

export type Device = "auto" | "cpu" | "cuda";
export type Trace = "off" | "messages" | "verbose";

/** Everything the extension reads, one field per package.json property. */
export interface Settings {
  enable: boolean;
  languages: string[];
  pythonPath: string;
  modelsDir: string;
  models: Record<string, string>;
  device: Device;
  temperature: number;
  inlineMaxLength: number;
  inlineMaxLines: number;
  inlineMinProbability: number;
  adaptation: boolean;
  adaptationMemoryMB: number;
  debounce: number;
  hallucinateMaxChars: number;
  trainMinutes: number;
  torchRequirement: string;
  pipExtraArgs: string[];
  traceServer: Trace;
}

/**
 * What the server gets, as `initializationOptions` and inside
 * `{"charcode": ...}` in `workspace/didChangeConfiguration` (the contract in
 * DESIGN.md). Client-only settings (interpreter, debounce, install options)
 * are not sent.
 */
export interface ServerSettings {
  enable: boolean;
  languages: string[];
  modelsDir: string | null;
  device: Device;
  temperature: number;
  inlineMaxLength: number;
  inlineMaxLines: number;
  inlineMinProbability: number;
  adaptation: boolean;
  adaptationMemoryMB: number;
  models: Record<string, string>;
}

/** The subset of `vscode.WorkspaceConfiguration` this module needs. */
export interface ConfigurationLike {
  get<T>(key: string): T | undefined;
}

/** Values for `${workspaceFolder}`, `${userHome}`, `${env:NAME}` and `~`. */
export interface VariableContext {
  workspaceFolder?: string;
  home?: string;
  env?: Record<string, string | undefined>;
}

interface PropertySchema {
  type: "boolean" | "string" | "number" | "integer" | "array" | "object";
  default: unknown;
  enum?: string[];
  minimum?: number;
  maximum?: number;
  items?: { type: string };
  additionalProperties?: { type: string };
}

const PROPERTIES = manifest.contributes.configuration.properties as unknown as Record<
  string,
  PropertySchema
>;

/** Setting key (without `charcode.`) for each field of `Settings`. */
export const KEYS: Record<keyof Settings, string> = {
  enable: "enable",
  languages: "languages",
  pythonPath: "pythonPath",
  modelsDir: "modelsDir",
  models: "models",
  device: "device",
  temperature: "temperature",
  inlineMaxLength: "inlineMaxLength",
  inlineMaxLines: "inlineMaxLines",
  inlineMinProbability: "inlineMinProbability",
  adaptation: "adaptation",
  adaptationMemoryMB: "adaptationMemoryMB",
  debounce: "debounce",
  hallucinateMaxChars: "hallucinateMaxChars",
  trainMinutes: "trainMinutes",
  torchRequirement: "torchRequirement",
  pipExtraArgs: "pipExtraArgs",
  traceServer: "trace.server",
};

/** Settings whose change needs a new server process (interpreter, document selector). */
const RESTART_KEYS = ["pythonPath", "languages"] as const;
/** Settings the running server takes through `workspace/didChangeConfiguration`. */
const SERVER_KEYS = [
  "enable",
  "languages",
  "modelsDir",
  "models",
  "device",
  "temperature",
  "inlineMaxLength",
  "inlineMaxLines",
  "inlineMinProbability",
  "adaptation",
  "adaptationMemoryMB",
] as const;

export function schemaOf(key: string): PropertySchema {
  const schema = PROPERTIES[`${SECTION}.${key}`];
  if (!schema) {
    throw new Error(`package.json declares no setting ${SECTION}.${key}`);
  }
  return schema;
}

/**
 * A deep copy of a JSON value. (Not structuredClone: VS Code hands out
 * configuration values as proxies, which it cannot clone.)
 */
function copy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** The default from package.json. */
export function defaultOf(key: string): unknown {
  return copy(schemaOf(key).default);
}

/** Why `value` does not fit `schema`, or undefined when it does. */
export function validate(value: unknown, schema: PropertySchema): string | undefined {
  switch (schema.type) {
    case "boolean":
      return typeof value === "boolean" ? undefined : "expected true or false";
    case "string":
      if (typeof value !== "string") {
        return "expected a string";
      }
      if (schema.enum && !schema.enum.includes(value)) {
        return `expected one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`;
      }
      return undefined;
    case "number":
    case "integer": {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        return "expected a number";
      }
      if (schema.type === "integer" && !Number.isInteger(value)) {
        return "expected a whole number";
      }
      if (schema.minimum !== undefined && value < schema.minimum) {
        return `expected at least ${schema.minimum}`;
      }
      if (schema.maximum !== undefined && value > schema.maximum) {
        return `expected at most ${schema.maximum}`;
      }
      return undefined;
    }
    case "array":
      if (!Array.isArray(value)) {
        return "expected a list";
      }
      if (schema.items?.type === "string" && !value.every((v) => typeof v === "string")) {
        return "expected a list of strings";
      }
      return undefined;
    case "object":
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return "expected an object";
      }
      if (
        schema.additionalProperties?.type === "string" &&
        !Object.values(value).every((v) => typeof v === "string")
      ) {
        return "expected string values";
      }
      return undefined;
  }
}

/** Expands `~`, `${userHome}`, `${workspaceFolder}` and `${env:NAME}` in a path setting. */
export function expandPath(value: string, vars: VariableContext = {}): string {
  const home = vars.home ?? os.homedir();
  const env = vars.env ?? process.env;
  let out = value.trim();
  out = out.replace(/\$\{userHome\}/g, home);
  out = out.replace(/\$\{env:([^}]+)\}/g, (_m, name: string) => env[name] ?? "");
  if (vars.workspaceFolder !== undefined) {
    out = out.replace(/\$\{workspaceFolder\}/g, vars.workspaceFolder);
  }
  if (out === "~") {
    out = home;
  } else if (out.startsWith("~/") || out.startsWith("~\\")) {
    out = path.join(home, out.slice(2));
  }
  return out;
}

export interface ReadResult {
  settings: Settings;
  /** One line per invalid value, naming the setting and what was expected. */
  problems: string[];
}

/**
 * Reads and validates every setting. An invalid value is replaced by the
 * package.json default and described in `problems`.
 */
export function readSettings(config: ConfigurationLike, vars: VariableContext = {}): ReadResult {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [field, key] of Object.entries(KEYS)) {
    const schema = schemaOf(key);
    const raw = config.get<unknown>(key);
    if (raw === undefined || raw === null) {
      values[field] = defaultOf(key);
      continue;
    }
    const problem = validate(raw, schema);
    if (problem) {
      problems.push(
        `${SECTION}.${key}: ${problem}, got ${JSON.stringify(raw)}; using ${JSON.stringify(schema.default)}`,
      );
      values[field] = defaultOf(key);
    } else {
      values[field] = copy(raw);
    }
  }
  const settings = values as unknown as Settings;
  settings.pythonPath = settings.pythonPath ? expandPath(settings.pythonPath, vars) : "";
  settings.modelsDir = settings.modelsDir ? expandPath(settings.modelsDir, vars) : "";
  settings.models = Object.fromEntries(
    Object.entries(settings.models).map(([lang, p]) => [lang, expandPath(p, vars)]),
  );
  settings.languages = [...new Set(settings.languages.map((l) => l.trim()).filter((l) => l))];
  settings.torchRequirement = settings.torchRequirement.trim() || "torch";
  return { settings, problems };
}

export function serverSettings(s: Settings): ServerSettings {
  return {
    enable: s.enable,
    languages: [...s.languages],
    modelsDir: s.modelsDir || null,
    device: s.device,
    temperature: s.temperature,
    inlineMaxLength: s.inlineMaxLength,
    inlineMaxLines: s.inlineMaxLines,
    inlineMinProbability: s.inlineMinProbability,
    adaptation: s.adaptation,
    adaptationMemoryMB: s.adaptationMemoryMB,
    models: { ...s.models },
  };
}

/** The `settings` of a `workspace/didChangeConfiguration` notification. */
export function didChangeConfigurationSettings(s: Settings): { charcode: ServerSettings } {
  return { charcode: serverSettings(s) };
}

export interface ChangeImpact {
  /** a new server process is needed */
  restart: boolean;
  /** the running server should be told through didChangeConfiguration */
  notifyServer: boolean;
  /** something the extension itself uses changed (status items, commands) */
  any: boolean;
}

/**
 * What a configuration change means, from `event.affectsConfiguration`
 * (pass `(s) => event.affectsConfiguration(s)`).
 */
export function classifyChange(affects: (section: string) => boolean): ChangeImpact {
  const hit = (key: string) => affects(`${SECTION}.${key}`);
  return {
    restart: RESTART_KEYS.some(hit),
    notifyServer: SERVER_KEYS.some(hit),
    any: affects(SECTION),
  };
}
