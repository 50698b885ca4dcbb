/**
 * End-to-end harness: a private code-server (a real VS Code workbench) with
 * the built .vsix installed, driven by headless Chromium through
 * playwright-core. Everything binds to 127.0.0.1; the browser blocks and
 * records every request to any other host.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";

export function log(message: string): void {
  const t = new Date().toISOString().slice(11, 19);
  console.log(`[e2e ${t}] ${message}`);
}

const ANSI_STYLE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g"); // the call log may be dimmed

/**
 * The first line of an error and, for a Playwright action, the last step of its
 * call log, which says why it did not happen ("element is not visible", "<div>
 * intercepts pointer events").
 */
function briefly(message: string): string {
  const lines = message
    .replace(ANSI_STYLE, "")
    .split("\n")
    .map((l) => l.trim());
  const callLog = lines.indexOf("Call log:");
  const last = callLog >= 0 ? lines.slice(callLog + 1).filter((l) => l).pop() : undefined;
  return last ? `${lines[0]} ${last}` : lines[0];
}

/**
 * Polls `probe` until it returns a value other than undefined/false, or
 * throws after `timeoutMs` saying what was awaited (and the last error).
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) {
        return value;
      }
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${briefly(lastError.message)})` : "";
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

export function execFileText(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { env: options.env, cwd: options.cwd, timeout: options.timeoutMs ?? 600_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, output: `${stdout}${stderr}${error && !stderr ? error.message : ""}` });
      },
    );
  });
}

export interface CodeServerOptions {
  bin: string;
  runDir: string;
  workspace: string;
  env: NodeJS.ProcessEnv;
}

/** A code-server process group of its own, so stopping it ends the extension host and the language server too. */
export class CodeServer {
  readonly userDataDir: string;
  readonly extensionsDir: string;
  readonly logFile: string;
  port = 0;
  private child: ChildProcess | undefined;

  constructor(private readonly options: CodeServerOptions) {
    this.userDataDir = path.join(options.runDir, "user-data");
    this.extensionsDir = path.join(options.runDir, "extensions");
    this.logFile = path.join(options.runDir, "code-server.log");
    fs.mkdirSync(path.join(this.userDataDir, "User"), { recursive: true });
    fs.mkdirSync(this.extensionsDir, { recursive: true });
  }

  private commonArgs(): string[] {
    return ["--user-data-dir", this.userDataDir, "--extensions-dir", this.extensionsDir];
  }

  writeUserSettings(settings: Record<string, unknown>): void {
    fs.writeFileSync(path.join(this.userDataDir, "User", "settings.json"), JSON.stringify(settings, null, 2));
  }

  async installExtension(vsix: string): Promise<void> {
    const { code, output } = await execFileText(
      this.options.bin,
      ["--config", "/dev/null", ...this.commonArgs(), "--install-extension", vsix],
      { env: this.options.env, timeoutMs: 180_000 },
    );
    if (code !== 0 || !/successfully installed/i.test(output)) {
      throw new Error(`installing ${vsix} failed (exit ${code}):\n${output}`);
    }
  }

  async start(): Promise<string> {
    this.port = await freePort();
    const out = fs.openSync(this.logFile, "a");
    this.child = spawn(
      this.options.bin,
      [
        "--config",
        "/dev/null",
        "--auth",
        "none",
        "--bind-addr",
        `127.0.0.1:${this.port}`,
        "--disable-telemetry",
        "--disable-update-check",
        "--disable-workspace-trust",
        "--disable-getting-started-override",
        "--ignore-last-opened",
        ...this.commonArgs(),
        this.options.workspace,
      ],
      { env: this.options.env, detached: true, stdio: ["ignore", out, out] },
    );
    fs.closeSync(out);
    const url = `http://127.0.0.1:${this.port}`;
    await waitFor(
      "code-server /healthz",
      async () => {
        if (this.child?.exitCode !== null) {
          throw new Error(`code-server exited with ${this.child?.exitCode}; see ${this.logFile}`);
        }
        const response = await fetch(`${url}/healthz`).catch(() => undefined);
        return response?.ok;
      },
      60_000,
    );
    return url;
  }

  /** Ends the whole process group (code-server, extension host, language server, pip). */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child?.pid || child.exitCode !== null) {
      return;
    }
    const group = -child.pid;
    const signal = (s: NodeJS.Signals) => {
      try {
        process.kill(group, s);
      } catch {
        // already gone
      }
    };
    signal("SIGTERM");
    const alive = () => {
      try {
        process.kill(group, 0);
        return true;
      } catch {
        return false;
      }
    };
    try {
      await waitFor("code-server to exit", () => !alive(), 10_000);
    } catch {
      signal("SIGKILL");
    }
  }
}

export interface BrowserSession {
  context: BrowserContext;
  page: Page;
  /** URLs the page tried to load from anywhere but 127.0.0.1 (all blocked) */
  blocked: string[];
  consoleLines: string[];
  close(): Promise<void>;
}

function isLocal(url: string): boolean {
  try {
    const u = new URL(url);
    if (u.protocol === "data:" || u.protocol === "blob:" || u.protocol === "about:") {
      return true;
    }
    return u.hostname === "127.0.0.1" || u.hostname === "localhost" || u.hostname === "[::1]";
  } catch {
    return false;
  }
}

/** A WebSocket URL whose host is not this machine (same hosts as isLocal). */
const NOT_LOCAL_SOCKET = /^wss?:\/\/(?!(127\.0\.0\.1|localhost|\[::1\])(:\d+)?([/?#]|$))/i;

export async function openBrowser(profileDir: string, chromiumPath: string): Promise<BrowserSession> {
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1440, height: 900 },
    serviceWorkers: "block",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-default-apps",
      "--disable-features=Translate,OptimizationHints,MediaRouter",
    ],
  });
  const blocked: string[] = [];
  const consoleLines: string[] = [];
  await context.route("**/*", async (route) => {
    const url = route.request().url();
    if (isLocal(url)) {
      await route.continue();
    } else {
      blocked.push(url);
      await route.abort("blockedbyclient");
    }
  });
  // Route only the sockets to other hosts. A routed socket, even one passed on with
  // connectToServer(), carries every frame through Playwright's driver and back;
  // code-server's own sockets must pass through natively. (Relaying them here once
  // in a while lost a reply: a folder listing, a file's content or a save never
  // resolved.) A RegExp is matched in the driver, so unmatched sockets pass through.
  await context.routeWebSocket(NOT_LOCAL_SOCKET, (ws) => {
    blocked.push(ws.url());
    void ws.close({ code: 1008, reason: "blocked by the e2e test" });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));
  return {
    context,
    page,
    blocked,
    consoleLines,
    close: () => context.close(),
  };
}
