/**
 * Logging: one "charcode" output channel (a LogOutputChannel, so it has
 * levels and timestamps) shared by the extension and the language client's
 * trace (`charcode.trace.server`). Other modules take a `Logger` so they can
 * be tested without VS Code.
 */
import type * as vscode from "vscode";

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug(message: string): void;
}

/** A logger that discards everything (tests, or before activation). */
export const nullLogger: Logger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
};

export function createLogChannel(api: typeof vscode): vscode.LogOutputChannel {
  return api.window.createOutputChannel("charcode", { log: true });
}

/** Formats an unknown thrown value as one line for a log or a message. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  if (typeof error === "object" && error !== null && "message" in error) {
    return String(error.message);
  }
  return String(error);
}

/** The button on charcode's error and warning notifications that reveals this channel. */
export const OPEN_LOGS = "Open Logs";

/** The part of `vscode.window` that shows notifications. */
export type MessageWindow = Pick<typeof vscode.window, "showErrorMessage" | "showWarningMessage">;

/**
 * Shows an error or warning notification with `actions` and an "Open Logs"
 * button after them. "Open Logs" is handled here (it reveals `channel`), so a
 * caller handles only its own actions: the result is the action chosen, or
 * undefined for "Open Logs" or a dismissed notification.
 */
export async function showWithOpenLogs<A extends string>(
  window: MessageWindow,
  channel: Pick<vscode.OutputChannel, "show">,
  severity: "error" | "warning",
  message: string,
  ...actions: A[]
): Promise<A | undefined> {
  const items: string[] = [...actions, OPEN_LOGS];
  const choice =
    severity === "error" ? await window.showErrorMessage(message, ...items) : await window.showWarningMessage(message, ...items);
  if (choice === OPEN_LOGS) {
    channel.show();
    return undefined;
  }
  return choice as A | undefined;
}
