/** Fake interpreter output shared by the interpreter-discovery and environment-creation tests. */
import type { RunResult } from "../../common/processes";

/** What PROBE_SCRIPT prints for a Python 3.11 that has everything, with `fields` replaced. */
export const probeJson = (fields: Record<string, unknown> = {}) =>
  JSON.stringify({
    executable: "/usr/bin/python3",
    version: [3, 11, 7],
    charcode: true,
    torch: true,
    pygls: true,
    venv: true,
    charcodeVersion: "0.1.0",
    ...fields,
  });

/** A process that exited 0 with `stdout`. */
export const ok = (stdout: string): RunResult => ({ code: 0, stdout, stderr: "" });
