/**
 * The language status item (`vscode.languages.createLanguageStatusItem`), one
 * per served language: which model completes the current file's language
 * (name, validation bits/char), busy while the server starts, installs or
 * trains, and an action where something is missing ("Train a model", "Set
 * up", "Open logs").
 *
 * `describe` is a pure function of the state, tested without VS Code; the
 * `LanguageStatus` class only renders it.
 */
import type * as vscode from "vscode";

/** One language's entry of `charcode.modelInfo`. */
export interface ModelInfo {
  name: string;
  path: string;
  source?: string;
  layers?: number;
  hidden?: number;
  val_bits_per_char?: number | null;
  corpus?: unknown;
  size_bytes?: number;
  /** what adaptation learned from the workspace (absent from servers without it) */
  learned?: { state?: string; files?: number; bytes?: number };
}

export type ModelInfoEntry = ModelInfo | { error: string };

/** The result of `charcode.modelInfo`. */
export interface ModelInfoResult {
  languages: Record<string, ModelInfoEntry>;
}

export type ServerState =
  | "starting"
  | "running"
  | "stopped"
  | "failed"
  | "noPython"
  | "installing"
  | "disabled";

export interface StatusView {
  text: string;
  detail: string;
  severity: "info" | "warning" | "error";
  busy: boolean;
  command?: { title: string; command: string; arguments?: unknown[] };
}

export function isModel(entry: ModelInfoEntry | undefined): entry is ModelInfo {
  return entry !== undefined && !("error" in entry);
}

export function formatBits(bits: number | null | undefined): string {
  return typeof bits === "number" && Number.isFinite(bits) ? `${bits.toFixed(2)} bits/char` : "bits/char unknown";
}

export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) {
    return "";
  }
  if (bytes < 1024 * 1024) {
    return `${(bytes / 1024).toFixed(0)} KB`;
  }
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** A one-line description of a model: "2x256 LSTM · 2.31 bits/char · workspace". */
export function modelSummary(model: ModelInfo): string {
  const parts: string[] = [];
  if (model.layers && model.hidden) {
    parts.push(`${model.layers}x${model.hidden} LSTM`);
  }
  parts.push(formatBits(model.val_bits_per_char));
  if (model.source) {
    parts.push(model.source);
  }
  const learned = model.learned;
  if (learned && learned.state === "learning") {
    parts.push(`learning the workspace (${learned.files ?? 0} files so far)`);
  } else if (learned && learned.files) {
    parts.push(`learned ${learned.files} files, ${formatBytes(learned.bytes)}`);
  }
  return parts.join(" · ");
}

export interface StatusInput {
  language: string;
  state: ServerState;
  /** the language's entry of the last modelInfo answer */
  model?: ModelInfoEntry;
  /** percentage (0-100) while training this language */
  training?: number;
}

export function describe(input: StatusInput): StatusView {
  const { language, state, model, training } = input;
  if (training !== undefined) {
    return {
      text: `charcode: training ${Math.round(training)}%`,
      detail: `a new ${language} model`,
      severity: "info",
      busy: true,
    };
  }
  switch (state) {
    case "disabled":
      return {
        text: "charcode: off",
        detail: "completions are turned off",
        severity: "info",
        busy: false,
        command: { title: "Turn on", command: "charcode.toggleCompletions" },
      };
    case "starting":
      return { text: "charcode: starting", detail: "", severity: "info", busy: true };
    case "installing":
      return {
        text: "charcode: installing",
        detail: "creating the Python environment",
        severity: "info",
        busy: true,
        command: { title: "Open logs", command: "charcode.openLogs" },
      };
    case "noPython":
      return {
        text: "charcode: no Python environment",
        detail: "no interpreter has charcode",
        severity: "error",
        busy: false,
        command: { title: "Set up", command: "charcode.createEnvironment" },
      };
    case "failed":
    case "stopped":
      return {
        text: "charcode: server not running",
        detail: state === "failed" ? "the language server failed" : "the language server stopped",
        severity: "error",
        busy: false,
        command: { title: "Open logs", command: "charcode.openLogs" },
      };
    case "running":
      break;
  }
  if (model === undefined) {
    return { text: "charcode", detail: "asking the server for its model", severity: "info", busy: true };
  }
  if (!isModel(model)) {
    return {
      text: "charcode: no model",
      detail: model.error,
      severity: "warning",
      busy: false,
      command: { title: "Train a model", command: "charcode.trainWorkspace", arguments: [language] },
    };
  }
  return {
    text: `charcode: ${model.name}`,
    detail: modelSummary(model),
    severity: "info",
    busy: false,
    command: { title: "Model info", command: "charcode.showModelInfo" },
  };
}

/** Renders `describe` into one LanguageStatusItem per served language. */
export class LanguageStatus {
  private readonly items = new Map<string, vscode.LanguageStatusItem>();
  private state: ServerState = "starting";
  private models: Record<string, ModelInfoEntry> = {};
  private training = new Map<string, number>();

  constructor(private readonly api: typeof vscode) {}

  setLanguages(languages: string[]): void {
    for (const [language, item] of this.items) {
      if (!languages.includes(language)) {
        item.dispose();
        this.items.delete(language);
      }
    }
    for (const language of languages) {
      if (!this.items.has(language)) {
        const item = this.api.languages.createLanguageStatusItem(`charcode.status.${language}`, {
          language,
        });
        item.name = "charcode";
        this.items.set(language, item);
      }
    }
    this.render();
  }

  setState(state: ServerState): void {
    this.state = state;
    if (state !== "running") {
      this.models = {};
    }
    this.render();
  }

  setModels(result: ModelInfoResult): void {
    this.models = { ...result.languages };
    for (const language of this.items.keys()) {
      this.models[language] ??= { error: `no ${language} model was found` };
    }
    this.render();
  }

  setTraining(language: string, percent: number | undefined): void {
    if (percent === undefined) {
      this.training.delete(language);
    } else {
      this.training.set(language, percent);
    }
    this.render();
  }

  private render(): void {
    const severity = {
      info: this.api.LanguageStatusSeverity.Information,
      warning: this.api.LanguageStatusSeverity.Warning,
      error: this.api.LanguageStatusSeverity.Error,
    };
    for (const [language, item] of this.items) {
      const view = describe({
        language,
        state: this.state,
        model: this.models[language],
        training: this.training.get(language),
      });
      item.text = view.text;
      item.detail = view.detail;
      item.severity = severity[view.severity];
      item.busy = view.busy;
      item.command = view.command;
    }
  }

  dispose(): void {
    for (const item of this.items.values()) {
      item.dispose();
    }
    this.items.clear();
  }
}
