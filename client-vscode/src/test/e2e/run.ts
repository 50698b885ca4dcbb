/**
 * The extension, end to end, in a real VS Code (code-server) driven by
 * headless Chromium:
 *
 *   1. install the built .vsix into a fresh code-server profile;
 *   2. open a Python file of a fixture workspace that holds a tiny model;
 *   3. (mode "install") with only a plain python3 on PATH, accept the offer to
 *      create charcode's private environment, which pip-installs the wheel
 *      shipped in the .vsix and no torch; the time from the click to the
 *      first ghost text is printed ("first-run: ...");
 *   4. the language status item shows the model;
 *   5. ghost text appears within 1 s after typing at 50 ms/key with no
 *      trigger; Ctrl+Right accepts one word of it and Tab the rest; keys
 *      typed while no server runs (while the environment is made, and right
 *      after Restart Server) get ghost text once it runs, with no further key;
 *   6. a completion item appears (Ctrl+Space), and Enter accepts it;
 *   7. Hallucinate Function from the command palette inserts a function;
 *   8. Train on Workspace trains a model; in mode "install" it first offers
 *      torch: a cancelled install leaves the environment serving without
 *      torch, a second one installs it and the training goes on;
 *   9. no browser request ever left 127.0.0.1.
 *
 * Screenshots and logs go to .e2e/artifacts/. The last line reads
 * "e2e: N passed, N failed". Environment:
 *   CHARCODE_E2E_MODE        install (default) | python
 *   CHARCODE_PYTHON          a Python with charcode (trains the fixture model;
 *                            in mode "python" it also runs the server)
 *   CHARCODE_E2E_VSIX        the .vsix (default: newest dist/*.vsix)
 *   CHARCODE_E2E_CODE_SERVER the code-server launcher (default: scripts/install-code-server.sh's)
 *   CHARCODE_E2E_TORCH       charcode.torchRequirement, what Train on Workspace installs (default torch==2.13.0)
 *   CHARCODE_E2E_PIP_ARGS    charcode.pipExtraArgs as JSON (default: ["--index-url", $PIP_INDEX_URL or PyPI])
 *   CHARCODE_E2E_MODEL       a python.safetensors to use instead of training one
 *   CHROMIUM                 the browser (default /usr/bin/chromium)
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Page } from "playwright-core";

import {
  codeServerBin,
  defaultPython,
  E2E_DIR,
  newestVsix,
  plainPython,
  prepareWorkspace,
  ROOT,
  serverEnv,
  userSettings,
} from "./fixture";
import { CodeServer, execFileText, log, openBrowser, type BrowserSession, waitFor } from "./harness";
import {
  clearNotifications,
  editorLines,
  editorHasFocus,
  focusEditor,
  ghostText,
  languageStatusText,
  openFile,
  pickRow,
  runCommand,
  selectedSuggestion,
  settled,
  suggestions,
  toasts,
  toastWith,
  waitForWorkbench,
  withOneReload,
} from "./workbench";

const ARTIFACTS = path.join(E2E_DIR, "artifacts");

const mode = process.env.CHARCODE_E2E_MODE === "python" ? "python" : "install";

type Step = { name: string; status: "passed" | "failed" | "skipped"; seconds: number; error?: string };

class Run {
  readonly steps: Step[] = [];
  private failed = false;
  private shot = 0;

  constructor(private readonly page: () => Page | undefined) {}

  async screenshot(name: string): Promise<void> {
    const page = this.page();
    if (!page) {
      return;
    }
    const file = path.join(ARTIFACTS, `${String(++this.shot).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file }).catch((e: Error) => log(`screenshot ${name} failed: ${e.message}`));
    log(`screenshot ${path.relative(ROOT, file)}`);
  }

  /** Runs a step unless an earlier one failed; a failure is screenshotted and recorded. */
  async step(name: string, fn: () => Promise<void>): Promise<void> {
    if (this.failed) {
      this.steps.push({ name, status: "skipped", seconds: 0 });
      log(`SKIP ${name}`);
      return;
    }
    log(`step: ${name}`);
    const started = Date.now();
    try {
      await fn();
      const seconds = (Date.now() - started) / 1000;
      this.steps.push({ name, status: "passed", seconds });
      log(`PASS ${name} (${seconds.toFixed(1)} s)`);
    } catch (e) {
      const seconds = (Date.now() - started) / 1000;
      const error = e instanceof Error ? e.message : String(e);
      this.failed = true;
      this.steps.push({ name, status: "failed", seconds, error });
      log(`FAIL ${name} (${seconds.toFixed(1)} s): ${error}`);
      await this.screenshot(`FAILED-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`);
    }
  }
}

/** Two new lines at the end of the file: where the steps type their code. */
async function newParagraphAtEnd(page: Page): Promise<void> {
  await page.keyboard.press("Control+End");
  await page.keyboard.press("Enter");
  await page.keyboard.press("Enter");
}

/**
 * Saves the active editor (Ctrl+S) and reads the file back. If the write does
 * not land (seen while code-server's sockets were relayed through Playwright:
 * the tab stayed dirty and the file unchanged), it says so, takes a screenshot,
 * puts the focus back into the editor if it left, and saves again, as a user would.
 */
async function saveAndRead(page: Page, file: string, run: Run): Promise<string> {
  const before = fs.statSync(file).mtimeMs;
  const saved = () => fs.statSync(file).mtimeMs !== before;
  await page.keyboard.press("Control+S");
  try {
    await waitFor("the file to be saved", saved, 15_000);
  } catch (e) {
    const dirty = await page.locator(".tabs-container .tab.active.dirty").count();
    const focused = await page.evaluate<string>("String(document.activeElement?.className ?? '(none)')");
    log(`${(e as Error).message} (tab dirty: ${dirty > 0}, focus: ${JSON.stringify(focused)}); saving again`);
    for (const t of await toasts(page)) {
      log(`  notification: ${t.text}`);
    }
    const statusBar = await page.locator(".part.statusbar").innerText().catch(() => "");
    log(`  status bar: ${statusBar.replace(/\s+/g, " ")}`);
    await run.screenshot("save-stuck");
    if (!(await editorHasFocus(page))) {
      await focusEditor(page); // clicks the first line: put the cursor back where the steps type
      await page.keyboard.press("Control+End");
    }
    await page.keyboard.press("Control+S");
    await waitFor("the file to be saved after a second Ctrl+S", saved, 45_000);
  }
  return fs.readFileSync(file, "utf8");
}

/**
 * What the ghost-text steps type (issue 15's text, then the start of the next
 * function, whose name and parameters the model completes).
 */
const FAST_TYPING = "def main():\n    args = parse()\n\n\ndef ";

/**
 * The text a partial accept took: `before` is the ghost text before Ctrl+Right,
 * `after` what is left. It must be one word (or, where the ghost text starts
 * with separators, only those), as VS Code's acceptNextWord takes.
 */
function acceptedWord(before: string, after: string): string {
  if (!before.endsWith(after) || after.length >= before.length) {
    throw new Error(`Ctrl+Right did not accept a prefix of the ghost text: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  }
  const word = before.slice(0, before.length - after.length);
  if (!/^(\w+|[^\w\s]+|\s+)$/.test(word)) {
    throw new Error(`Ctrl+Right accepted ${JSON.stringify(word)}, not one word of ${JSON.stringify(before)}`);
  }
  return word;
}

/** The lines of the extension's log channel that match `message`: when (ms since the epoch) and what, oldest first. */
function loggedLines(logDir: string, message: RegExp): { time: number; text: string }[] {
  const lines: { time: number; text: string }[] = [];
  const line = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) \[\w+\] (.*)$/gm;
  const visit = (dir: string) => {
    for (const entry of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        visit(file);
      } else if (entry.name === "charcode.log") {
        for (const m of fs.readFileSync(file, "utf8").matchAll(line)) {
          if (message.test(m[3])) {
            lines.push({ time: new Date(`${m[1]}T${m[2]}`).getTime(), text: m[3] }); // local time, like the log
          }
        }
      }
    }
  };
  visit(logDir);
  return lines.sort((a, b) => a.time - b.time);
}

/** When (ms since the epoch, oldest first) the extension's log channel logged a line matching `message`. */
function loggedTimes(logDir: string, message: RegExp): number[] {
  return loggedLines(logDir, message).map((l) => l.time);
}

/** What pip fetched (downloaded or took from its cache), from the "pip: Downloading x (N MB)" lines of the log. */
function pipFetched(logDir: string): { files: number; mb: number } {
  const unit = { kB: 0.001, MB: 1, GB: 1000 } as const;
  let mb = 0;
  const lines = loggedLines(logDir, /^pip:\s+(Downloading|Using cached) \S+ \([\d.]+ (kB|MB|GB)\)/);
  for (const { text } of lines) {
    const m = /\(([\d.]+) (kB|MB|GB)\)/.exec(text);
    if (m) {
      mb += Number(m[1]) * unit[m[2] as keyof typeof unit];
    }
  }
  return { files: lines.length, mb };
}

/** The interpreter of charcode's private environment in a code-server profile, once it is made. */
function privateEnvPython(userDataDir: string): string {
  const globalStorage = path.join(userDataDir, "User", "globalStorage");
  for (const dir of fs.existsSync(globalStorage) ? fs.readdirSync(globalStorage) : []) {
    const python = path.join(globalStorage, dir, "python-env", "bin", "python");
    if (fs.existsSync(python)) {
      return python;
    }
  }
  throw new Error(`no python-env/bin/python under ${globalStorage}`);
}

/** torch's version in `python`, or undefined when `import torch` fails. */
async function torchVersion(python: string): Promise<string | undefined> {
  const { code, output } = await execFileText(python, ["-c", "import sys, torch; sys.stdout.write(torch.__version__)"], {
    timeoutMs: 180_000,
  });
  return code === 0 ? output.trim() : undefined;
}

/** A folder's size on disk, in MB. */
function folderMB(dir: string): number {
  let bytes = 0;
  const visit = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const file = path.join(d, entry.name);
      if (entry.isDirectory()) {
        visit(file);
      } else if (entry.isFile()) {
        bytes += fs.statSync(file).size;
      }
    }
  };
  visit(dir);
  return bytes / 1e6;
}

/** The 1, 5 and 15 minute load averages, as `uptime` shows them. */
function load(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(", ");
}

/** Runs Train on Workspace for Python on the workspace folder (the picks a user makes). */
async function startTraining(page: Page): Promise<void> {
  await runCommand(page, "charcode: Train on Workspace");
  await pickRow(page, /^python/);
  // the workspace folder is preselected: accept the multi-select pick
  await waitFor("the folder pick", () => page.locator(".quick-input-widget .monaco-list-row", { hasText: "workspace" }).isVisible(), 10_000);
  await page.keyboard.press("Enter");
}

/** Waits for charcode's offer to install torch, checks that it says how large the download is, and returns its text. */
async function torchOffer(page: Page): Promise<string> {
  const offer = toastWith(page, /training needs PyTorch/);
  await waitFor(
    "the offer to install torch",
    async () => {
      await noCharcodeError(page);
      return offer.isVisible();
    },
    120_000,
  );
  await settled(offer);
  const text = (await offer.innerText()).replace(/\s+/g, " ").trim();
  if (!/about \d+ (MB|GB) download/.test(text)) {
    throw new Error(`the offer does not say how large the download is: ${text}`);
  }
  return text;
}

/** When the extension logged "charcode language server running", oldest first. */
function serverRunningTimes(logDir: string): number[] {
  return loggedTimes(logDir, /^charcode language server running/);
}

interface GhostTextWatcher {
  /** stops watching; when ghost text first showed (ms since the epoch), if it did */
  stop(): number | undefined;
}

/** Polls for ghost text in the background (while a step waits for something else) and notes when it first shows. */
function watchGhostText(page: Page): GhostTextWatcher {
  let shownAt: number | undefined;
  let stopped = false;
  void (async () => {
    while (!stopped && shownAt === undefined) {
      if (await ghostText(page).catch(() => "")) {
        shownAt = Date.now();
      } else {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  })();
  return {
    stop: () => {
      stopped = true;
      return shownAt;
    },
  };
}

/** What the steps that type while the server is not running type: the model completes the function's name. */
const TYPED_WHILE_STARTING = "def ";

/**
 * After keys typed while the server was not running (`runningBefore`: how many
 * "running" lines the log had before), waits with no key for ghost text and
 * for the log to say the server runs, and requires the ghost text within
 * `boundMs` of the later of the last key and the server running. Returns a
 * line for the log.
 */
async function ghostTextOnceServerRuns(
  page: Page,
  logDir: string,
  runningBefore: number,
  lastKey: number,
  boundMs: number,
  watcher?: GhostTextWatcher,
): Promise<string> {
  const ghost = await waitFor("ghost text with no further key", async () => (await ghostText(page)) || undefined, 180_000, 20);
  const ghostAt = watcher?.stop() ?? Date.now();
  const running = await waitFor(
    "the extension's log to say the server runs",
    () => serverRunningTimes(logDir).slice(runningBefore).pop(),
    10_000,
  );
  const after = ghostAt - Math.max(running, lastKey);
  const line =
    `server running ${running - lastKey} ms after the last key` +
    `${running > lastKey ? " (typed while it was not running)" : " (it ran before the last key: the race was not exercised)"}; ` +
    `ghost text ${after} ms after that: ${JSON.stringify(ghost)}`;
  if (after > boundMs) {
    throw new Error(`${line}: not within ${boundMs} ms`);
  }
  return line;
}

/** Fails the wait early when charcode shows an error notification. */
async function noCharcodeError(page: Page): Promise<void> {
  for (const t of await toasts(page)) {
    if (/charcode: .*(failed|did not start|cannot|not running|no python)/i.test(t.text)) {
      throw new Error(`charcode reported: ${t.text}`);
    }
  }
}

async function main(): Promise<number> {
  fs.rmSync(ARTIFACTS, { recursive: true, force: true });
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  // a run folder holds a whole Python environment with torch: keep only the newest
  fs.rmSync(path.join(E2E_DIR, "runs"), { recursive: true, force: true });
  const runDir = path.join(E2E_DIR, "runs", new Date().toISOString().replace(/[:.]/g, "-"));
  fs.mkdirSync(runDir, { recursive: true });
  const python = process.env.CHARCODE_PYTHON ?? defaultPython();
  const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
  const torch = process.env.CHARCODE_E2E_TORCH ?? "torch==2.13.0";
  // the machine's index, not PyTorch's CPU index (CI reaches only its own; there torch==2.13.0 is a local CPU wheel)
  const pipArgs = process.env.CHARCODE_E2E_PIP_ARGS
    ? (JSON.parse(process.env.CHARCODE_E2E_PIP_ARGS) as string[])
    : ["--index-url", process.env.PIP_INDEX_URL || "https://pypi.org/simple"];
  log(`mode ${mode}; run folder ${path.relative(ROOT, runDir)}; artifacts ${path.relative(ROOT, ARTIFACTS)}`);

  let browser: BrowserSession | undefined;
  let codeServer: CodeServer | undefined;
  const run = new Run(() => browser?.page);
  const currentPage = () => {
    if (!browser?.page) {
      throw new Error("no page");
    }
    return browser.page;
  };
  const reloadOnceIfStuck = (page: Page, attempt: (timeoutMs: number) => Promise<void>, shot: string) =>
    withOneReload(page, attempt, async (e) => {
      log(`${e.message}; reloading the page once`);
      await run.screenshot(shot);
    });
  const workspace = path.join(runDir, "workspace");
  let typedWhileInstalling = 0;
  let ghostWhileInstalling: GhostTextWatcher | undefined;
  let createClicked = 0;
  let firstRun = "";
  const example = path.join(workspace, "example.py");
  const stop = async () => {
    await browser?.close().catch(() => undefined);
    await codeServer?.stop();
  };
  process.on("SIGINT", () => void stop().then(() => process.exit(130)));
  process.on("SIGTERM", () => void stop().then(() => process.exit(143)));

  try {
    await run.step("prepare the workspace, the model and code-server", async () => {
      await prepareWorkspace(workspace, python);
      const env0 = serverEnv(runDir);
      const plainBin = mode === "install" ? await plainPython(runDir, env0) : undefined;
      const env = serverEnv(runDir, plainBin);
      codeServer = new CodeServer({ bin: await codeServerBin(), runDir, workspace, env });
      codeServer.writeUserSettings(
        userSettings({
          "charcode.torchRequirement": torch,
          "charcode.pipExtraArgs": pipArgs,
          "charcode.trainMinutes": 0.2,
          // a calmer sample from the tiny fixture model
          "charcode.temperature": 0.3,
          // the whole greedy line as ghost text, so that the partial-accept step has words to
          // take one by one (the server's tests cover the default, which may end it sooner)
          "charcode.inlineMinProbability": 0,
          ...(mode === "python" ? { "charcode.pythonPath": python } : {}),
        }),
      );
      const vsix = process.env.CHARCODE_E2E_VSIX ?? newestVsix();
      log(`installing ${path.relative(ROOT, vsix)}`);
      await codeServer.installExtension(vsix);
    });

    await run.step("the workbench loads with the workspace", async () => {
      if (!codeServer) {
        throw new Error("no code-server");
      }
      const url = await codeServer.start();
      browser = await openBrowser(path.join(runDir, "chromium-profile"), chromiumPath);
      await browser.page.goto(`${url}/?folder=${encodeURIComponent(workspace)}`);
      await waitForWorkbench(browser.page);
      const page = browser.page;
      const listed = (timeoutMs: number) =>
        waitFor(
          "the explorer to list example.py",
          () => page.locator(".explorer-folders-view .monaco-list-row", { hasText: "example.py" }).isVisible(),
          timeoutMs,
        ).then(() => undefined);
      await reloadOnceIfStuck(page, listed, "explorer-empty");
      await run.screenshot("workbench");
    });

    await run.step("opening a Python file activates charcode", async () => {
      const page = currentPage();
      await reloadOnceIfStuck(page, (timeoutMs) => openFile(page, "example.py", timeoutMs), "editor-stuck");
      await run.screenshot("example-open");
    });

    if (mode === "install") {
      await run.step("charcode offers to create its Python environment", async () => {
        const page = currentPage();
        const offer = toastWith(page, /Create a private environment for charcode/);
        await waitFor("the create-environment notification", () => offer.isVisible(), 60_000);
        await settled(offer);
        await run.screenshot("setup-offer");
        log(`  offer: ${(await offer.innerText()).replace(/\s+/g, " ").trim()}`);
        createClicked = Date.now();
        await offer.locator(".monaco-button", { hasText: "Create Environment" }).click();
        const progress = toastWith(page, /setting up the Python environment/);
        await waitFor("the setup progress notification", () => progress.isVisible(), 30_000);
        await settled(progress);
        await run.screenshot("setup-progress");
        // a user types on while the environment is made (no server runs yet); not Escape, which would hide the toasts
        await page.locator(".editor-instance .monaco-editor .view-lines").first().click({ position: { x: 5, y: 5 } });
        await newParagraphAtEnd(page);
        await page.keyboard.type(TYPED_WHILE_STARTING, { delay: 50 });
        typedWhileInstalling = Date.now();
        ghostWhileInstalling = watchGhostText(page);
        await run.screenshot("typed-during-setup");
      });

      await run.step("the environment is installed (the wheel from the .vsix, no torch) and the server starts", async () => {
        const page = currentPage();
        let lastMessage = "";
        await waitFor(
          "the environment-ready notification",
          async () => {
            await noCharcodeError(page);
            const progress = toastWith(page, /setting up the Python environment/);
            // a short timeout: once the toast is gone innerText would wait 30 s for it
            const message = (await progress.innerText({ timeout: 500 }).catch(() => "")).replace(/\s+/g, " ").trim();
            if (message && message !== lastMessage) {
              lastMessage = message;
              log(`  ${message.slice(0, 160)}`);
            }
            if (await toastWith(page, /the Python environment is ready/).isVisible()) {
              return "its notification";
            }
            // the notification can be gone by the time this looks (it was once, while the editor had the focus)
            return codeServer && loggedTimes(path.join(codeServer.userDataDir, "logs"), /^Private environment ready/).length
              ? "the extension's log"
              : undefined;
          },
          15 * 60_000,
          1000,
        ).then((how) => log(`  environment ready (seen in ${how})`));
        await run.screenshot("setup-done");
      });

      await run.step("typed while the environment was made: ghost text within 5 s of the server running, with no key", async () => {
        const page = currentPage();
        if (!codeServer) {
          throw new Error("no code-server");
        }
        const logDir = path.join(codeServer.userDataDir, "logs");
        log(`  ${await ghostTextOnceServerRuns(page, logDir, 0, typedWhileInstalling, 5_000, ghostWhileInstalling)}`);
        await run.screenshot("ghost-after-setup");
        // the watcher noted when the ghost text first showed (stop() again returns the same time)
        const ghostAt = ghostWhileInstalling?.stop() ?? Date.now();
        firstRun = `first-run: create environment -> first ghost text ${((ghostAt - createClicked) / 1000).toFixed(1)} s (load average ${load()})`;
        log(`  ${firstRun}`);
      });

      await run.step("the private environment has charcode and no torch", async () => {
        if (!codeServer) {
          throw new Error("no code-server");
        }
        const python = privateEnvPython(codeServer.userDataDir);
        const version = await torchVersion(python);
        if (version) {
          throw new Error(`torch ${version} imports in ${python}`);
        }
        const fetched = pipFetched(path.join(codeServer.userDataDir, "logs"));
        const envDir = path.dirname(path.dirname(python));
        log(
          `  no torch in ${path.relative(ROOT, python)}; pip fetched ${fetched.files} files, ${fetched.mb.toFixed(1)} MB ` +
            `(besides the bundled wheel); the environment takes ${folderMB(envDir).toFixed(0)} MB`,
        );
      });
    }

    await run.step("the language status item shows the model", async () => {
      const page = currentPage();
      await noCharcodeError(page);
      await clearNotifications(page);
      const text = await waitFor(
        "the model in the language status",
        async () => {
          await noCharcodeError(page);
          const t = await languageStatusText(page).catch(() => "");
          return /charcode: (?!starting|no model|installing|server not running|no Python)\S/.test(t) && /bits\/char/.test(t)
            ? t
            : undefined;
        },
        180_000,
        1000,
      );
      log(`  status: ${text.replace(/\s+/g, " ")}`);
      await run.screenshot("status-item");
      await focusEditor(page);
    });

    let typed = "";
    await run.step("ghost text within 1 s of fast typing (50 ms/key, no trigger); Ctrl+Right accepts a word, Tab the rest", async () => {
      const page = currentPage();
      await newParagraphAtEnd(page);
      // a fast typist: 50 ms per key, and no explicit trigger (Alt+\) anywhere in this step
      await page.keyboard.type(FAST_TYPING, { delay: 50 });
      const lastKey = Date.now();
      const ghost = await waitFor("ghost text within 1 s of the last key", async () => (await ghostText(page)) || undefined, 1_000, 20);
      log(`  ghost text ${Date.now() - lastKey} ms after the last key: ${JSON.stringify(ghost)}`);
      await run.screenshot("ghost-text");
      const line = FAST_TYPING.split("\n").pop() ?? "";
      // the cursor's line: the last one that starts with what was typed on it (the steps type at the end of the file)
      const lineNow = async () => (await editorLines(page)).filter((l) => l.startsWith(line)).pop() ?? "";

      // Ctrl+Right: VS Code's partial accept (editor.action.inlineSuggest.acceptNextWord) takes one word
      await page.keyboard.press("Control+ArrowRight");
      const rest = await waitFor(
        "Ctrl+Right to accept one word of the ghost text",
        async () => {
          const now = await ghostText(page);
          return now !== ghost ? now : undefined;
        },
        5_000,
        20,
      );
      const word = acceptedWord(ghost, rest);
      log(`  Ctrl+Right accepted ${JSON.stringify(word)}; ghost text left: ${JSON.stringify(rest)}`);
      await run.screenshot("ghost-word-accepted");
      // the line on screen is what was typed plus that word, with the rest still ghost text after it
      const shown = await lineNow();
      const restOfLine = rest.split("\n")[0];
      if (!shown.endsWith(restOfLine) || shown.slice(0, shown.length - restOfLine.length) !== `${line}${word}`) {
        throw new Error(`after Ctrl+Right the line reads ${JSON.stringify(shown)}, not ${JSON.stringify(line + word)} + ghost text ${JSON.stringify(restOfLine)}`);
      }

      // Tab accepts the rest (the ghost text on screen now: VS Code may have asked again after the partial accept)
      const beforeTab = await ghostText(page);
      if (beforeTab) {
        await page.keyboard.press("Tab");
        await waitFor("Tab to accept the rest of the ghost text", async () => (await ghostText(page)) !== beforeTab, 10_000);
      }
      const full = `${line}${word}${beforeTab.split("\n")[0]}`.trimEnd();
      const saved = await saveAndRead(page, example, run);
      if (!saved.split("\n").some((l) => l.trimEnd() === full)) {
        throw new Error(`the saved file has no line ${JSON.stringify(full)}`);
      }
      typed = full.trim();
      await run.screenshot("ghost-accepted");
    });

    // Issue 15's cause: keys typed while the server starts reach no inline provider, and VS Code asks
    // again only on the next key. The extension asks once the server runs; the bound allows for the
    // server's first answer after a start (it reads the document, and learns the workspace).
    await run.step("typed while the server restarts (50 ms/key, no trigger): ghost text within 5 s of the server running", async () => {
      const page = currentPage();
      if (!codeServer) {
        throw new Error("no code-server");
      }
      const logDir = path.join(codeServer.userDataDir, "logs");
      const runningBefore = serverRunningTimes(logDir).length;
      await page.keyboard.press("Escape");
      await runCommand(page, "charcode: Restart Server");
      if (!(await editorHasFocus(page))) {
        await focusEditor(page);
      }
      await page.keyboard.press("Control+End");
      await newParagraphAtEnd(page);
      // a few keys, so that the last comes before the server runs again
      await page.keyboard.type(TYPED_WHILE_STARTING, { delay: 50 });
      const lastKey = Date.now();
      log(`  ${await ghostTextOnceServerRuns(page, logDir, runningBefore, lastKey, 5_000)}`);
      await run.screenshot("ghost-after-restart");
      await page.keyboard.press("Escape");
    });

    await run.step("a completion item appears (Ctrl+Space) and Enter accepts it", async () => {
      const page = currentPage();
      await page.keyboard.press("Escape");
      await newParagraphAtEnd(page);
      await page.keyboard.type("def sc", { delay: 60 });
      const labels = await waitFor(
        "the suggest widget",
        async () => {
          const rows = await suggestions(page);
          if (rows.length) {
            return rows;
          }
          await page.keyboard.press("Control+Space");
          return undefined;
        },
        30_000,
        2000,
      );
      log(`  suggestions: ${JSON.stringify(labels.slice(0, 5))}`);
      await run.screenshot("suggestions");
      // Enter accepts the selected row, which need not be the first: VS Code selects the
      // suggestion that agrees with the ghost text shown at the same time
      const selected = await waitFor("a selected suggestion", () => selectedSuggestion(page).then((l) => l || undefined), 5_000);
      const label = selected.split(",")[0].trim();
      log(`  selected: ${JSON.stringify(label)}`);
      await page.keyboard.press("Enter");
      await waitFor("the suggest widget to close", async () => (await suggestions(page)).length === 0, 10_000);
      const saved = await saveAndRead(page, example, run);
      if (!saved.includes(`def ${label}`)) {
        throw new Error(`the saved file has no "def ${label}"`);
      }
      await run.screenshot("suggestion-accepted");
    });

    await run.step("Hallucinate Function (command palette) writes a function into the editor", async () => {
      const page = currentPage();
      await page.keyboard.press("Escape");
      await newParagraphAtEnd(page);
      const saved = await saveAndRead(page, example, run);
      const defsBefore = (saved.match(/^\s*def /gm) ?? []).length;
      await runCommand(page, "charcode: Hallucinate Function");
      await waitFor(
        "the hallucinated function in the editor",
        async () => {
          await noCharcodeError(page);
          const progress = await toastWith(page, /hallucinating a function/).isVisible();
          const text = (await editorLines(page)).join("\n");
          return !progress && (text.match(/^\s*def /gm) ?? []).length > defsBefore;
        },
        120_000,
        500,
      );
      await run.screenshot("hallucinated");
      const after = await saveAndRead(page, example, run);
      const added = after.slice(saved.trimEnd().length);
      log(`  hallucinated:\n${added.replace(/^/gm, "    | ")}`);
      if ((after.match(/^\s*def /gm) ?? []).length <= defsBefore) {
        throw new Error("the saved file has no new function");
      }
      if (typed && !after.includes(typed)) {
        throw new Error(`the accepted ghost text ${JSON.stringify(typed)} is not in the saved file`);
      }
    });

    if (mode === "install") {
      await run.step("Train on Workspace without torch offers it; a cancelled install leaves the environment serving without torch", async () => {
        const page = currentPage();
        if (!codeServer) {
          throw new Error("no code-server");
        }
        await page.keyboard.press("Escape");
        await startTraining(page);
        log(`  offer: ${await torchOffer(page)}`);
        await run.screenshot("torch-offer");
        await toastWith(page, /training needs PyTorch/).locator(".monaco-button", { hasText: "Install torch" }).click();
        const progress = toastWith(page, /installing torch.* for training/);
        await waitFor("the torch install progress", () => progress.isVisible(), 30_000);
        await settled(progress);
        await run.screenshot("torch-progress");
        log(`  progress: ${(await progress.innerText()).replace(/\s+/g, " ").trim()}`);
        await progress.locator(".monaco-button", { hasText: "Cancel" }).click();
        const cancelled = toastWith(page, /installing torch was cancelled/);
        await waitFor(
          "the cancelled notification",
          async () => {
            await noCharcodeError(page);
            return cancelled.isVisible();
          },
          60_000,
        );
        log(`  ${(await cancelled.innerText()).replace(/\s+/g, " ").trim()}`);
        await run.screenshot("torch-cancelled");
        const python = privateEnvPython(codeServer.userDataDir);
        const version = await torchVersion(python);
        if (version) {
          throw new Error(`torch ${version} imports after the cancelled install`);
        }
        // still serving: the status item shows the model, and no training started
        await clearNotifications(page);
        const status = await languageStatusText(page);
        if (!/bits\/char/.test(status)) {
          throw new Error(`after the cancel the status item reads ${JSON.stringify(status)}`);
        }
        if (await toastWith(page, /training a python model/).isVisible()) {
          throw new Error("training started though torch was not installed");
        }
        log("  torch does not import; the server still serves the model");
      });

      await run.step("a second Train on Workspace installs torch (pip's progress in the notification) and trains", async () => {
        const page = currentPage();
        if (!codeServer) {
          throw new Error("no code-server");
        }
        await focusEditor(page);
        await startTraining(page);
        await torchOffer(page);
        await toastWith(page, /training needs PyTorch/).locator(".monaco-button", { hasText: "Install torch" }).click();
        const clicked = Date.now();
        let lastMessage = "";
        await waitFor(
          "torch installed and the training started",
          async () => {
            await noCharcodeError(page);
            const message = (await toastWith(page, /installing torch.* for training/).innerText({ timeout: 500 }).catch(() => ""))
              .replace(/\s+/g, " ")
              .trim();
            if (message && message !== lastMessage) {
              lastMessage = message;
              log(`  ${message.slice(0, 160)}`);
            }
            return toastWith(page, /training a python model/).isVisible();
          },
          15 * 60_000,
          500,
        );
        const version = await torchVersion(privateEnvPython(codeServer.userDataDir));
        if (!version) {
          throw new Error("the training started, but torch does not import in the private environment");
        }
        log(`  torch ${version} installed; the training started ${((Date.now() - clicked) / 1000).toFixed(1)} s after the click (load average ${load()})`);
      });
    }

    await run.step("Train on Workspace shows progress and the new model is used", async () => {
      const page = currentPage();
      if (mode !== "install") {
        // (in mode "install" the step before started it, after installing torch)
        await page.keyboard.press("Escape");
        await startTraining(page);
      }
      const progress = toastWith(page, /training a python model/);
      const shown = await waitFor(
        "training progress with a percentage and chars/s",
        async () => {
          await noCharcodeError(page);
          const text = (await progress.innerText().catch(() => "")).replace(/\s+/g, " ");
          return /\d+%/.test(text) && /chars\/s/.test(text) ? text : undefined;
        },
        180_000,
        250,
      );
      log(`  ${shown}`);
      await run.screenshot("training-progress");
      const outcome = await waitFor(
        "training to finish",
        async () => {
          await noCharcodeError(page);
          if (await toastWith(page, /takes precedence/).locator(".monaco-button", { hasText: "Use New Model" }).isVisible()) {
            return "precedence";
          }
          return (await toastWith(page, /the new python model is in use/).isVisible()) ? "in use" : undefined;
        },
        300_000,
        500,
      );
      await run.screenshot("training-done");
      if (outcome === "precedence") {
        // the fixture workspace's own model outranks the trained one: switch to it
        await toastWith(page, /takes precedence/).locator(".monaco-button", { hasText: "Use New Model" }).click();
      }
      await clearNotifications(page);
      await focusEditor(page);
      const status = await waitFor(
        "the trained model in the language status",
        async () => {
          const text = await languageStatusText(page).catch(() => "");
          return /bits\/char/.test(text) && !/workspace/.test(text) ? text : undefined;
        },
        60_000,
        1000,
      );
      log(`  status: ${status.replace(/\s+/g, " ")}`);
      await run.screenshot("trained-model-status");
    });

    await run.step("Show Model Info, Toggle Completions, Restart Server and Open Logs", async () => {
      const page = currentPage();
      const statusMatches = (re: RegExp, what: string) =>
        waitFor(what, async () => re.test(await languageStatusText(page).catch(() => "")), 60_000, 500);
      await runCommand(page, "charcode: Show Model Info");
      const row = page.locator(".quick-input-widget .monaco-list-row", { hasText: /python: Python/ });
      await waitFor("the model in Show Model Info", () => row.isVisible(), 20_000);
      await run.screenshot("model-info");
      await page.keyboard.press("Escape");
      await runCommand(page, "charcode: Toggle Completions");
      await statusMatches(/charcode: off/, "the status item to say off");
      await run.screenshot("completions-off");
      await runCommand(page, "charcode: Toggle Completions");
      await statusMatches(/bits\/char/, "the status item to show the model again");
      await runCommand(page, "charcode: Restart Server");
      await statusMatches(/bits\/char/, "the model after a restart");
      await runCommand(page, "charcode: Open Logs");
      const logs = page.locator(".part.panel", { hasText: "charcode language server running" });
      await waitFor("the charcode log in the panel", () => logs.isVisible(), 20_000);
      await run.screenshot("logs");
    });

    await run.step("no browser request left 127.0.0.1", () => {
      const blocked = browser?.blocked ?? [];
      if (blocked.length) {
        throw new Error(`blocked non-local requests: ${[...new Set(blocked)].slice(0, 10).join(", ")}`);
      }
      return Promise.resolve();
    });
  } finally {
    if (browser) {
      fs.writeFileSync(path.join(ARTIFACTS, "browser-console.log"), browser.consoleLines.join("\n"));
      fs.writeFileSync(path.join(ARTIFACTS, "blocked-requests.log"), [...new Set(browser.blocked)].join("\n"));
    }
    await stop();
    if (codeServer) {
      fs.cpSync(codeServer.logFile, path.join(ARTIFACTS, "code-server.log"));
      const logs = path.join(codeServer.userDataDir, "logs");
      if (fs.existsSync(logs)) {
        fs.cpSync(logs, path.join(ARTIFACTS, "vscode-logs"), { recursive: true });
      }
    }
    if (fs.existsSync(example)) {
      fs.copyFileSync(example, path.join(ARTIFACTS, "example.py.final"));
    }
  }

  const passed = run.steps.filter((s) => s.status === "passed").length;
  const failed = run.steps.filter((s) => s.status !== "passed").length;
  fs.writeFileSync(path.join(ARTIFACTS, "steps.json"), JSON.stringify(run.steps, null, 2));
  console.log("");
  for (const s of run.steps) {
    console.log(`${s.status.toUpperCase().padEnd(7)} ${s.seconds.toFixed(1).padStart(6)} s  ${s.name}${s.error ? `\n          ${s.error}` : ""}`);
  }
  if (!failed && !process.env.CHARCODE_E2E_KEEP) {
    fs.rmSync(runDir, { recursive: true, force: true });
  } else {
    console.log(`run folder kept: ${runDir}`);
  }
  if (firstRun) {
    console.log(firstRun);
  }
  console.log(`e2e: ${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
