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
