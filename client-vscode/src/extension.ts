/**
 * charcode for VS Code: ghost-text and suggested completions from local
 * character-level LSTM models, served by the charcode language server.
 * This file only wires the parts in common/ together.
 */
import * as vscode from "vscode";

import { registerCommands } from "./common/commands";
import { onPythonExtensionInterpreterChange } from "./common/interpreterDiscovery";
import { createLogChannel } from "./common/log";
import { ServerManager } from "./common/server";
import { EnvironmentSetup } from "./common/setup";
import { LanguageStatus } from "./common/status";

let server: ServerManager | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = createLogChannel(vscode);
  const status = new LanguageStatus(vscode);
  server = new ServerManager(context, log, status);
  const setup = new EnvironmentSetup(context, log, server);
  server.onMissingPython = (resolution, settings) => setup.offer(resolution, settings);
  context.subscriptions.push(log, status, server);
  const version = (context.extension.packageJSON as { version?: string }).version ?? "?";
  log.info(`charcode ${version} activating in ${vscode.env.appName} ${vscode.version}`);

  registerCommands(context, { server, setup, status, log });

  const manager = server;
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration((e) => manager.onConfigurationChanged(e)));
  const pythonWatch = await onPythonExtensionInterpreterChange(vscode, () => {
    if (!manager.settings().pythonPath) {
      log.info("The Python extension's interpreter changed: restarting");
      void manager.restart();
    }
  });
  if (pythonWatch) {
    context.subscriptions.push(pythonWatch);
  }

  // not awaited: activation must not wait for the interpreter probe or the server
  void manager.restart();
}

export async function deactivate(): Promise<void> {
  await server?.stop();
  server = undefined;
}
