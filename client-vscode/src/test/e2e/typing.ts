/**
 * Typing benchmark (issue 15 part 1: ghost text for fast typists). In a real
 * VS Code (code-server + headless Chromium, as the E2E), it types
 * `\ndef main():\n    args = ` into the fixture's example.py at several
 * speeds with no explicit trigger, and reports per speed:
 *
 *   - the LSP messages that reached the server while typing and in the 3 s
 *     after the last key (textDocument/inlineCompletion, completion,
 *     didChange, $/cancelRequest), counted by a tap between the extension
 *     and the server (lspTap.ts);
 *   - the time from the last key to the first ghost text on screen
 *     (polled every 20 ms, up to 5 s, 15 s in setup "restart"; "none" if it
 *     never came).
 *
 * The server runs from CHARCODE_PYTHON (default ../.venv/bin/python) through
 * the tap, so this needs no environment install. Editor setups: "e2e" (the
 * E2E's settings: quick suggestions off), "defaults" (VS Code's default
 * suggestions: quick suggestions on, word-based suggestions) and "restart"
 * (the E2E's settings, typing right after `charcode: Restart Server`, i.e.
 * while the server starts, as when a file is opened and typed into at once).
 * Results: a table on stdout and .e2e/typing/results.json.
 *
 *   CHARCODE_TYPING_SPEEDS  ms per key, comma-separated (default 200,100,60,50)
 *   CHARCODE_TYPING_REPEAT  samples per speed (default 2)
 *   CHARCODE_TYPING_SETUPS  some of e2e,defaults,restart (default all three)
 *   CHARCODE_TYPING_PYTHONPATH  PYTHONPATH for the server (to compare clients
 *                           against one fixed server while server/ changes)
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Page } from "playwright-core";

import { codeServerBin, defaultPython, E2E_DIR, newestVsix, prepareWorkspace, serverEnv, userSettings } from "./fixture";
import { CodeServer, log, openBrowser, type BrowserSession, waitFor } from "./harness";
import type { TapEntry } from "./lspTap";
import { focusEditor, ghostText, languageStatusText, openFile, runCommand, waitForWorkbench } from "./workbench";

const TEXT = "\ndef main():\n    args = ";

const SETUPS: Record<string, Record<string, unknown>> = {
  e2e: {},
  defaults: {
    "editor.quickSuggestions": { other: "on", comments: "off", strings: "off" },
    "editor.wordBasedSuggestions": "matchingDocuments",
    "editor.suggestOnTriggerCharacters": true,
  },
  // the E2E's settings, typing right after `charcode: Restart Server` (while the server starts)
  restart: {},
};

interface Sample {
  setup: string;
  msPerKey: number;
  inline: number;
  inlineAnswered: number;
  completion: number;
  didChange: number;
  cancels: number;
  /** ms from the last key to ghost text on screen; undefined: none within 5 s */
  ghostMs?: number;
  ghost?: string;
}

function readTap(file: string): TapEntry[] {
  if (!fs.existsSync(file)) {
    return [];
  }
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as TapEntry);
}

/** A stand-in for python that runs `-m charcode.server` through the tap and says it is the interpreter. */
function tapPython(runDir: string, python: string, tapLog: string): string {
  const wrapper = path.join(runDir, "tap-python");
  const tap = path.join(__dirname, "lspTap.js");
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const pythonPath = process.env.CHARCODE_TYPING_PYTHONPATH;
  fs.writeFileSync(
    wrapper,
    [
      "#!/bin/sh",
      ...(pythonPath ? [`export PYTHONPATH=${q(pythonPath)}`] : []),
      `if [ "$1" = "-m" ] && [ "$2" = "charcode.server" ]; then exec ${q(process.execPath)} ${q(tap)} ${q(tapLog)} ${q(python)} "$@"; fi`,
      // the interpreter probe reports sys.executable, which the extension then runs: report this script instead
      `${q(python)} "$@" | sed 's|"executable": "[^"]*"|"executable": "${wrapper}"|'`,
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  return wrapper;
}

async function sample(page: Page, tapLog: string, setup: string, msPerKey: number): Promise<Sample> {
  await page.keyboard.press("Escape");
  await page.keyboard.press("Control+End");
  await page.keyboard.press("Enter");
  await waitFor("no ghost text", async () => (await ghostText(page)) === "", 5_000, 50);
  await new Promise((r) => setTimeout(r, 1000));
  const wait = setup === "restart" ? 15_000 : 5_000;
  if (setup === "restart") {
    await runCommand(page, "charcode: Restart Server");
    await page.keyboard.press("Escape");
  }
  const start = Date.now();
  await page.keyboard.type(TEXT, { delay: msPerKey });
  const last = Date.now();
  let ghostMs: number | undefined;
  let ghost = "";
  while (Date.now() - last < wait) {
    ghost = await ghostText(page);
    if (ghost.trim()) {
      ghostMs = Date.now() - last;
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, Math.max(0, last + 3_000 - Date.now())));
  const window = readTap(tapLog).filter((e) => e.t >= start && e.t <= Math.max(last + 3_000, Date.now()));
  const inbound = (method: string) => window.filter((e) => e.dir === "in" && e.method === method);
  return {
    setup,
    msPerKey,
    inline: inbound("textDocument/inlineCompletion").length,
    inlineAnswered: window.filter((e) => e.dir === "out" && (e.firstItemLength ?? -1) > 0).length,
    completion: inbound("textDocument/completion").length,
    didChange: inbound("textDocument/didChange").length,
    cancels: inbound("$/cancelRequest").length,
    ghostMs,
    ghost: ghost.trim().slice(0, 40),
  };
}

async function runSetup(setup: string, speeds: number[], repeat: number, python: string, root: string): Promise<Sample[]> {
  const runDir = path.join(root, setup);
  fs.mkdirSync(runDir, { recursive: true });
  const workspace = path.join(runDir, "workspace");
  await prepareWorkspace(workspace, python);
  const tapLog = path.join(runDir, "lsp-tap.jsonl");
  const codeServer = new CodeServer({ bin: await codeServerBin(), runDir, workspace, env: serverEnv(runDir) });
  codeServer.writeUserSettings(
    userSettings({ "charcode.pythonPath": tapPython(runDir, python, tapLog), ...SETUPS[setup] }),
  );
  await codeServer.installExtension(process.env.CHARCODE_E2E_VSIX ?? newestVsix());
  let browser: BrowserSession | undefined;
  const samples: Sample[] = [];
  try {
    const url = await codeServer.start();
    browser = await openBrowser(path.join(runDir, "chromium-profile"), process.env.CHROMIUM ?? "/usr/bin/chromium");
    const page = browser.page;
    await page.goto(`${url}/?folder=${encodeURIComponent(workspace)}`);
    await waitForWorkbench(page);
    await openFile(page, "example.py");
    const status = await waitFor(
      "the model in the language status",
      async () => {
        const t = await languageStatusText(page).catch(() => "");
        return /bits\/char/.test(t) ? t : undefined;
      },
      180_000,
      1000,
    );
    log(`[${setup}] status: ${status.replace(/\s+/g, " ")}`);
    await focusEditor(page);
    // warm-up (the server's first request in a document reads the whole file)
    await sample(page, tapLog, setup, 200);
    for (let i = 0; i < repeat; i++) {
      for (const ms of speeds) {
        const s = await sample(page, tapLog, setup, ms);
        log(`[${setup}] ${ms} ms/key: ${JSON.stringify(s)}`);
        samples.push(s);
      }
    }
    await page.screenshot({ path: path.join(root, `${setup}.png`) });
  } finally {
    await browser?.close().catch(() => undefined);
    await codeServer.stop();
  }
  return samples;
}

async function main(): Promise<number> {
  const python = process.env.CHARCODE_PYTHON ?? defaultPython();
  const speeds = (process.env.CHARCODE_TYPING_SPEEDS ?? "200,100,60,50").split(",").map(Number);
  const repeat = Number(process.env.CHARCODE_TYPING_REPEAT ?? 2);
  const setups = (process.env.CHARCODE_TYPING_SETUPS ?? "e2e,defaults,restart").split(",");
  const root = path.join(E2E_DIR, "typing");
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  const samples: Sample[] = [];
  for (const setup of setups) {
    samples.push(...(await runSetup(setup, speeds, repeat, python, root)));
  }
  fs.writeFileSync(path.join(root, "results.json"), JSON.stringify(samples, null, 2));
  console.log("\nsetup     ms/key  inlineCompletion (answered)  completion  didChange  cancels  ghost text after last key");
  for (const s of samples) {
    console.log(
      [
        s.setup.padEnd(9),
        String(s.msPerKey).padStart(6),
        `${s.inline} (${s.inlineAnswered})`.padStart(28),
        String(s.completion).padStart(11),
        String(s.didChange).padStart(10),
        String(s.cancels).padStart(8),
        `  ${s.ghostMs === undefined ? "none" : `${s.ghostMs} ms`}`,
      ].join(" "),
    );
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
