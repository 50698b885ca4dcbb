/**
 * Commands (palette and keybindings). Their ids differ from the server's
 * executeCommand ids, which vscode-languageclient registers by itself; ours
 * call the server with `workspace/executeCommand` requests.
 */
import * as path from "path";
import * as vscode from "vscode";
import {
  LSPErrorCodes,
  type WorkDoneProgressBegin,
  type WorkDoneProgressEnd,
  type WorkDoneProgressReport,
  WorkDoneProgress,
} from "vscode-languageclient/node";

import { errorMessage, showWithOpenLogs } from "./log";
import { SERVER_COMMANDS, type ServerManager } from "./server";
import { SECTION } from "./settings";
import type { EnvironmentSetup } from "./setup";
import { isModel, type LanguageStatus, modelSummary, formatBytes, type ModelInfoResult } from "./status";

export const COMMANDS = {
  hallucinate: "charcode.hallucinate",
  trainWorkspace: "charcode.trainWorkspace",
  showModelInfo: "charcode.showModelInfo",
  restartServer: "charcode.restartServer",
  toggleCompletions: "charcode.toggleCompletions",
  openLogs: "charcode.openLogs",
  createEnvironment: "charcode.createEnvironment",
} as const;

interface Deps {
  server: ServerManager;
  setup: EnvironmentSetup;
  status: LanguageStatus;
  log: vscode.LogOutputChannel;
}

function isCancellation(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === LSPErrorCodes.RequestCancelled || error instanceof vscode.CancellationError;
}

/** Shows "the server is not running" with the way out, and returns false. */
async function requireServer(deps: Deps): Promise<boolean> {
  if (deps.server.running) {
    return true;
  }
  const choice = await showWithOpenLogs(
    vscode.window,
    deps.log,
    "error",
    deps.server.interpreter
      ? "charcode: the language server is not running."
      : "charcode: no Python environment with charcode is set up yet.",
    deps.server.interpreter ? "Restart Server" : "Create Environment",
  );
  if (choice === "Restart Server") {
    await deps.server.restart();
  } else if (choice === "Create Environment") {
    await deps.setup.create();
  }
  return false;
}

async function hallucinate(deps: Deps): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    void vscode.window.showWarningMessage("charcode: open a file and put the cursor where the function should go.");
    return;
  }
  const settings = deps.server.settings();
  const language = editor.document.languageId;
  if (!settings.languages.includes(language)) {
    void vscode.window.showWarningMessage(
      `charcode does not serve ${language} files (charcode.languages: ${settings.languages.join(", ")}).`,
    );
    return;
  }
  if (!(await requireServer(deps))) {
    return;
  }
  const client = deps.server.running;
  if (!client) {
    return;
  }
  const document = editor.document;
  const position = editor.selection.active;
  const args = {
    uri: client.code2ProtocolConverter.asUri(document.uri),
    position: client.code2ProtocolConverter.asPosition(position),
    temperature: settings.temperature,
    maxChars: settings.hallucinateMaxChars,
  };
  deps.log.info(`Hallucinating a ${language} function at ${document.uri.toString()}:${position.line + 1}`);
  try {
    const result = await vscode.window.withProgress(
      {
        location: vscode.ProgressLocation.Notification,
        title: "charcode: hallucinating a function",
        cancellable: true,
      },
      // the server streams the text into the document through workspace/applyEdit
      (_progress, token) =>
        deps.server.executeCommand<{ text?: string } | null>(SERVER_COMMANDS.hallucinate, [args], token),
    );
    const text = result?.text ?? "";
    deps.log.info(`Hallucinated ${text.length} characters`);
    if (!text) {
      void vscode.window.showInformationMessage("charcode: the model wrote nothing here.");
    }
  } catch (e) {
    if (isCancellation(e)) {
      deps.log.info("Hallucination cancelled");
      return;
    }
    deps.log.error(`Hallucinate Function failed: ${errorMessage(e)}`);
    void showWithOpenLogs(vscode.window, deps.log, "error", `charcode: Hallucinate Function failed: ${errorMessage(e)}`);
  }
}

async function pickLanguage(deps: Deps, preset: unknown): Promise<string | undefined> {
  const languages = deps.server.settings().languages;
  if (typeof preset === "string" && preset) {
    return preset;
  }
  const active = vscode.window.activeTextEditor?.document.languageId;
  const ordered = active && languages.includes(active) ? [active, ...languages.filter((l) => l !== active)] : languages;
  const picked = await vscode.window.showQuickPick(
    ordered.map((language) => ({ label: language, description: language === active ? "current file" : undefined })),
    { title: "charcode: train a model for which language?", placeHolder: "language id" },
  );
  return picked?.label;
}

async function pickFolders(): Promise<string[] | undefined> {
  const folders = vscode.workspace.workspaceFolders ?? [];
  const other = "$(folder-opened) Other folder...";
  let roots: string[] = [];
  if (folders.length) {
    const picked = await vscode.window.showQuickPick(
      [
        ...folders.map((f) => ({ label: f.name, description: f.uri.fsPath, picked: true, path: f.uri.fsPath })),
        { label: other, description: "choose folders on disk", picked: false, path: "" },
      ],
      { title: "charcode: train on which folders?", canPickMany: true },
    );
    if (!picked) {
      return undefined;
    }
    roots = picked.filter((p) => p.path).map((p) => p.path);
    if (!picked.some((p) => p.label === other)) {
      return roots.length ? roots : undefined;
    }
  }
  const chosen = await vscode.window.showOpenDialog({
    canSelectFolders: true,
    canSelectFiles: false,
    canSelectMany: true,
    openLabel: "Train on these folders",
  });
  roots.push(...(chosen ?? []).map((u) => u.fsPath));
  return roots.length ? roots : undefined;
}

async function trainWorkspace(deps: Deps, presetLanguage: unknown): Promise<void> {
  if (!(await requireServer(deps))) {
    return;
  }
  const language = await pickLanguage(deps, presetLanguage);
  if (!language) {
    return;
  }
  const roots = await pickFolders();
  if (!roots) {
    return;
  }
  // serving needs no torch, training does: the first time, offer to install it (then go on)
  const python = deps.server.interpreter;
  if (!python || !(await deps.setup.ensureTorch(python))) {
    return;
  }
  if (!(await requireServer(deps))) {
    return;
  }
  const minutes = deps.server.settings().trainMinutes;
  const workDoneToken = `charcode-train-${language}-${Date.now()}`;
  deps.log.info(`Training a ${language} model on ${roots.join(", ")} for up to ${minutes} min`);
  deps.status.setTraining(language, 0);
  try {
    const result = await vscode.window.withProgress(
      {
        location: vscode.ProgressLocation.Notification,
        title: `charcode: training a ${language} model`,
        cancellable: true,
      },
      async (progress, token) => {
        const client = deps.server.running;
        if (!client) {
          throw new Error("the charcode language server stopped");
        }
        let shown = 0;
        const onProgress = client.onProgress(
          WorkDoneProgress.type,
          workDoneToken,
          (value: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd) => {
            if (value.kind === "end") {
              return;
            }
            const percentage = value.percentage;
            const increment = percentage !== undefined ? Math.max(0, percentage - shown) : undefined;
            if (percentage !== undefined) {
              shown = Math.max(shown, percentage);
              deps.status.setTraining(language, percentage);
            }
            const prefix = percentage !== undefined ? `${Math.round(percentage)}%` : "";
            const message = [prefix, value.message].filter(Boolean).join(" · ");
            progress.report({ increment, message });
          },
        );
        try {
          return await deps.server.executeCommand<{ path: string; val_bits_per_char?: number | null }>(
            SERVER_COMMANDS.train,
            [{ language, roots, minutes }],
            token,
            workDoneToken,
          );
        } finally {
          onProgress.dispose();
        }
      },
    );
    deps.status.setTraining(language, undefined);
    deps.log.info(`Trained ${language} model: ${JSON.stringify(result)}`);
    const bits =
      typeof result?.val_bits_per_char === "number" ? `${result.val_bits_per_char.toFixed(2)} bits/char on validation` : "";
    const info = await deps.server.refreshModels();
    const inUse = info?.languages[language];
    if (result?.path && isModel(inUse) && !samePath(inUse.path, result.path)) {
      // a workspace or explicit model outranks the user models folder the server trains into
      const choice = await vscode.window.showWarningMessage(
        `charcode: the new ${language} model${bits ? ` (${bits})` : ""} was saved to ${result.path}, but ${inUse.path} (${inUse.source ?? "?"}) takes precedence.`,
        USE_NEW_MODEL,
        "Keep Current",
      );
      if (choice === USE_NEW_MODEL) {
        await useModel(language, result.path);
      }
      return;
    }
    const choice = await vscode.window.showInformationMessage(
      `charcode: the new ${language} model is in use (${bits ? `${bits}, ` : ""}saved to ${result?.path ?? "?"}).`,
      "Show Model Info",
    );
    if (choice) {
      await showModelInfo(deps);
    }
  } catch (e) {
    if (isCancellation(e)) {
      deps.log.info("Training cancelled");
      void vscode.window.showInformationMessage(`charcode: training the ${language} model was cancelled.`);
    } else {
      deps.log.error(`Training failed: ${errorMessage(e)}`);
      void showWithOpenLogs(vscode.window, deps.log, "error", `charcode: training the ${language} model failed: ${errorMessage(e)}`);
    }
  } finally {
    deps.status.setTraining(language, undefined);
  }
}

const USE_NEW_MODEL = "Use New Model";

function samePath(a: string, b: string): boolean {
  return path.resolve(a) === path.resolve(b);
}

/** Points `charcode.models[language]` at a checkpoint (workspace settings when a folder is open). */
async function useModel(language: string, checkpoint: string): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const target = vscode.workspace.workspaceFolders?.length
    ? vscode.ConfigurationTarget.Workspace
    : vscode.ConfigurationTarget.Global;
  const inspected = config.inspect<Record<string, string>>("models");
  const current =
    (target === vscode.ConfigurationTarget.Workspace ? inspected?.workspaceValue : inspected?.globalValue) ?? {};
  await config.update("models", { ...current, [language]: checkpoint }, target);
}

async function showModelInfo(deps: Deps): Promise<void> {
  if (!(await requireServer(deps))) {
    return;
  }
  let info: ModelInfoResult | undefined;
  try {
    info = await deps.server.refreshModels();
  } catch (e) {
    info = undefined;
    deps.log.error(errorMessage(e));
  }
  if (!info) {
    void showWithOpenLogs(vscode.window, deps.log, "error", "charcode: the server did not answer charcode.modelInfo.");
    return;
  }
  deps.log.info(`Models: ${JSON.stringify(info, null, 2)}`);
  const items = Object.entries(info.languages).map(([language, entry]) =>
    isModel(entry)
      ? {
          label: `${language}: ${entry.name}`,
          description: modelSummary(entry),
          detail: [entry.path, formatBytes(entry.size_bytes)].filter(Boolean).join(" · "),
          language,
          missing: false,
        }
      : { label: `${language}: no model`, description: "select to train one", detail: entry.error, language, missing: true },
  );
  const picked = await vscode.window.showQuickPick(items, {
    title: `charcode models (Python: ${deps.server.interpreter ?? "?"})`,
    matchOnDescription: true,
    matchOnDetail: true,
  });
  if (picked?.missing) {
    await vscode.commands.executeCommand(COMMANDS.trainWorkspace, picked.language);
  }
}

async function toggleCompletions(deps: Deps): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const inspected = config.inspect<boolean>("enable");
  const enabled = deps.server.settings().enable;
  const target =
    inspected?.workspaceFolderValue !== undefined
      ? vscode.ConfigurationTarget.WorkspaceFolder
      : inspected?.workspaceValue !== undefined
        ? vscode.ConfigurationTarget.Workspace
        : vscode.ConfigurationTarget.Global;
  await config.update("enable", !enabled, target);
  vscode.window.setStatusBarMessage(`charcode completions ${enabled ? "off" : "on"}`, 3000);
}

export function registerCommands(context: vscode.ExtensionContext, deps: Deps): void {
  const register = (id: string, fn: (...args: unknown[]) => Promise<void> | void) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  register(COMMANDS.hallucinate, () => hallucinate(deps));
  register(COMMANDS.trainWorkspace, (language) => trainWorkspace(deps, language));
  register(COMMANDS.showModelInfo, () => showModelInfo(deps));
  register(COMMANDS.restartServer, async () => {
    deps.log.info("Restart requested");
    await deps.server.restart();
  });
  register(COMMANDS.toggleCompletions, () => toggleCompletions(deps));
  register(COMMANDS.openLogs, () => deps.log.show());
  register(COMMANDS.createEnvironment, async () => {
    await deps.setup.create();
  });
}
