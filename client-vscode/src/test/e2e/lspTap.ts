/**
 * A transparent tap between VS Code and the charcode language server, for the
 * typing benchmark (typing.ts): it runs the server, passes every byte through
 * unchanged and at once in both directions, and appends one JSON line per LSP
 * message to a log: the time, the direction, the method and id, and for
 * inline-completion replies the length of the first item.
 *
 *   node lspTap.js LOG COMMAND ARGS...
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";

export interface TapEntry {
  /** Date.now() when the message had fully arrived at the tap */
  t: number;
  /** "in": from the client to the server; "out": from the server to the client */
  dir: "in" | "out";
  method?: string;
  id?: number | string;
  /** $/cancelRequest: the id cancelled */
  cancels?: number | string;
  /** a reply: the length of the first inline completion's text, -1 for none, undefined for other replies */
  firstItemLength?: number;
  /** its first 40 characters */
  firstItem?: string;
  /** a request's position */
  position?: { line: number; character: number };
  /** a reply that is an error: its code */
  error?: number;
}

/** Splits an LSP byte stream into message bodies. */
export class FrameReader {
  private buffer = Buffer.alloc(0);

  push(chunk: Buffer): string[] {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const bodies: string[] = [];
    for (;;) {
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) {
        return bodies;
      }
      const header = this.buffer.subarray(0, end).toString("ascii");
      const length = Number(/content-length:\s*(\d+)/i.exec(header)?.[1] ?? NaN);
      if (!Number.isFinite(length)) {
        throw new Error(`an LSP header without Content-Length: ${header}`);
      }
      if (this.buffer.length < end + 4 + length) {
        return bodies;
      }
      bodies.push(this.buffer.subarray(end + 4, end + 4 + length).toString("utf8"));
      this.buffer = this.buffer.subarray(end + 4 + length);
    }
  }
}

interface Message {
  method?: string;
  id?: number | string;
  params?: { id?: number | string; position?: { line: number; character: number } };
  result?: unknown;
  error?: { code?: number };
}

/** What the log says about one message; `inlineIds` remembers which requests were inline completions. */
export function describe(body: string, dir: "in" | "out", inlineIds: Set<number | string>, t = Date.now()): TapEntry {
  const message = JSON.parse(body) as Message;
  const entry: TapEntry = { t, dir, method: message.method, id: message.id };
  if (message.method === "$/cancelRequest") {
    entry.cancels = message.params?.id;
  }
  if (dir === "in" && message.method === "textDocument/inlineCompletion" && message.id !== undefined) {
    inlineIds.add(message.id);
    entry.position = message.params?.position;
  }
  if (dir === "out" && message.method === undefined && message.id !== undefined) {
    if (message.error) {
      entry.error = message.error.code;
    }
    if (inlineIds.delete(message.id)) {
      const result = message.result as { items?: { insertText?: unknown }[] } | { insertText?: unknown }[] | null;
      const items = Array.isArray(result) ? result : (result?.items ?? []);
      const text = items[0]?.insertText;
      entry.firstItemLength = typeof text === "string" ? text.length : -1;
      entry.firstItem = typeof text === "string" ? text.slice(0, 40) : undefined;
    }
  }
  return entry;
}

function main(): void {
  const [logFile, command, ...args] = process.argv.slice(2);
  if (!logFile || !command) {
    console.error("usage: node lspTap.js LOG COMMAND ARGS...");
    process.exit(2);
  }
  const log = fs.openSync(logFile, "a");
  const inlineIds = new Set<number | string>();
  const record = (body: string, dir: "in" | "out") => {
    try {
      fs.writeSync(log, `${JSON.stringify(describe(body, dir, inlineIds))}\n`);
    } catch (e) {
      fs.writeSync(log, `${JSON.stringify({ t: Date.now(), dir, unparsed: String(e) })}\n`);
    }
  };
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
  const fromClient = new FrameReader();
  const fromServer = new FrameReader();
  process.stdin.on("data", (chunk: Buffer) => {
    child.stdin.write(chunk);
    fromClient.push(chunk).forEach((b) => record(b, "in"));
  });
  process.stdin.on("end", () => child.stdin.end());
  child.stdout.on("data", (chunk: Buffer) => {
    process.stdout.write(chunk);
    fromServer.push(chunk).forEach((b) => record(b, "out"));
  });
  child.on("exit", (code, signal) => {
    fs.closeSync(log);
    process.exit(code ?? (signal ? 1 : 0));
  });
  for (const s of ["SIGTERM", "SIGINT"] as const) {
    process.on(s, () => child.kill(s));
  }
}

if (require.main === module) {
  main();
}
