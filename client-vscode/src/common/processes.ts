/**
 * Processes: running a program to completion (the interpreter probe, venv,
 * pip) with a timeout, cancellation and its output line by line. The other
 * modules take a `Run` so the unit tests can run them without real processes.
 */
import { spawn } from "child_process";
import * as os from "os";

import { errorMessage } from "./log";

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** called with each line of stdout and stderr as it arrives */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
}

export interface RunResult {
  /** exit code; null when the process could not start, was killed or timed out */
  code: number | null;
  stdout: string;
  stderr: string;
  /** why it did not run to an exit code (ENOENT, timeout, cancelled) */
  error?: string;
}

export type Run = (command: string, args: string[], options?: RunOptions) => Promise<RunResult>;

/** `Run` on real processes. Never rejects. */
export const spawnRun: Run = (command, args, options = {}) =>
  new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let error: string | undefined;
    let settled = false;
    const finish = (code: number | null) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        resolve({ code, stdout, stderr, error });
      }
    };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(command, args, {
        cwd: options.cwd ?? os.tmpdir(),
        env: options.env ?? process.env,
        stdio: ["ignore", "pipe", "pipe"],
        windowsHide: true,
      });
    } catch (e) {
      error = errorMessage(e);
      resolve({ code: null, stdout, stderr, error });
      return;
    }
    const lines = (chunk: string, pending: { rest: string }) => {
      if (!options.onLine) {
        return;
      }
      const parts = (pending.rest + chunk).split(/\r?\n|\r/);
      pending.rest = parts.pop() ?? "";
      for (const line of parts) {
        if (line.trim()) {
          options.onLine(line);
        }
      }
    };
    const out = { rest: "" };
    const err = { rest: "" };
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      lines(d, out);
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
      lines(d, err);
    });
    const onAbort = () => {
      error = "cancelled";
      child.kill();
    };
    options.signal?.addEventListener("abort", onAbort);
    if (options.signal?.aborted) {
      onAbort();
    }
    const timer = setTimeout(() => {
      error = `timed out after ${options.timeoutMs} ms`;
      child.kill();
    }, options.timeoutMs ?? 2 ** 31 - 1);
    child.on("error", (e) => {
      error = errorMessage(e);
      finish(null);
    });
    child.on("close", (code) => {
      for (const p of [out, err]) {
        if (p.rest.trim()) {
          options.onLine?.(p.rest);
        }
      }
      finish(error ? null : code);
    });
  });
