/**
 * Small, polling helpers for driving the VS Code workbench in the browser:
 * quick open, the command palette, notifications, the editor, ghost text,
 * the suggest widget and the language status hover.
 */
import type { Locator, Page } from "playwright-core";

import { waitFor } from "./harness";

const quickInput = ".quick-input-widget";

export async function waitForWorkbench(page: Page): Promise<void> {
  await waitFor("the workbench", () => page.locator(".monaco-workbench .part.statusbar").isVisible(), 90_000);
}

async function pickInQuickInput(page: Page, opener: () => Promise<void>, text: string, rowMatch: RegExp): Promise<void> {
  await opener();
  const input = page.locator(`${quickInput} input`);
  await waitFor("the quick input", () => input.isVisible(), 10_000);
  await input.fill(text);
  const row = page.locator(`${quickInput} .monaco-list-row`).filter({ hasText: rowMatch }).first();
  await waitFor(`a quick input entry matching ${rowMatch}`, () => row.isVisible(), 20_000);
  await row.click();
  // closed, or already showing the command's own quick pick (which can open before a poll sees it closed)
  await waitFor(
    "the quick input to close",
    async () => !(await input.isVisible()) || (await input.inputValue({ timeout: 1_000 })) !== text,
    10_000,
  );
}

/** Clicks the row of the open quick pick whose text matches. */
export async function pickRow(page: Page, text: RegExp): Promise<void> {
  const row = page.locator(`${quickInput} .monaco-list-row`).filter({ hasText: text }).first();
  await waitFor(`a quick pick row matching ${text}`, () => row.isVisible(), 20_000);
  await row.click();
}

/** Runs a command by its title through the command palette (F1). */
export async function runCommand(page: Page, title: string): Promise<void> {
  const escaped = title.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  await pickInQuickInput(page, () => page.keyboard.press("F1"), `>${title}`, new RegExp(escaped, "i"));
}

/**
 * Opens a top-level workspace file by double-clicking it in the Explorer (as a
 * person would; Quick Open depends on the file search warming up) and waits
 * for its editor to have focus.
 */
export async function openFile(page: Page, name: string, timeoutMs = 60_000): Promise<void> {
  const row = page.locator(".explorer-folders-view .monaco-list-row", { hasText: name }).first();
  await waitFor(`${name} in the Explorer`, () => row.isVisible(), timeoutMs);
  await row.dblclick();
  const tab = page.locator(".tabs-container .tab.active", { hasText: name });
  await waitFor(`the editor tab of ${name}`, () => tab.isVisible(), timeoutMs);
  const editor = page.locator(".editor-group-container.active .editor-instance .monaco-editor");
  await waitFor(
    `the editor of ${name} to have focus`,
    async () => {
      if (await editorHasFocus(page)) {
        return true;
      }
      // A short click timeout keeps probing while a loaded machine still renders the editor.
      await editor.locator(".view-lines").first().click({ position: { x: 5, y: 5 }, timeout: 5_000 });
      return false;
    },
    timeoutMs,
  );
}

/**
 * Runs `attempt` with a short timeout and, if it fails, reloads the page once
 * (what a user does) and runs it again with a long one. Once in a while
 * code-server's first request for a folder listing or a file's content never
 * resolved: the explorer kept its progress bar, or an editor tab opened with
 * no text, for minutes; a reload always brought it back. That was while its
 * sockets were relayed through Playwright's driver (see openBrowser); this
 * stays as a safety net.
 */
export async function withOneReload(
  page: Page,
  attempt: (timeoutMs: number) => Promise<void>,
  onStuck: (error: Error) => Promise<void>,
): Promise<void> {
  try {
    await attempt(30_000);
  } catch (e) {
    await onStuck(e instanceof Error ? e : new Error(String(e)));
    await page.reload();
    await waitForWorkbench(page);
    await attempt(60_000);
  }
}

export interface Toast {
  text: string;
  buttons: string[];
}

export async function toasts(page: Page): Promise<Toast[]> {
  const items = page.locator(".notifications-toasts .notification-toast");
  const result: Toast[] = [];
  for (const item of await items.all()) {
    const text = (await item.innerText().catch(() => "")).replace(/\s+/g, " ").trim();
    const buttons = await item.locator(".notification-list-item-buttons-container .monaco-button").allInnerTexts();
    result.push({ text, buttons: buttons.map((b) => b.trim()) });
  }
  return result;
}

/** Waits (best effort) until a notification has finished fading in, for a clean screenshot. */
export async function settled(toast: Locator): Promise<void> {
  const container = toast.locator("xpath=..");
  await waitFor(
    "the notification animation",
    async () => /notification-fade-in-done/.test((await container.getAttribute("class")) ?? ""),
    5_000,
    100,
  ).catch(() => undefined);
}

export function toastWith(page: Page, text: RegExp): Locator {
  return page.locator(".notifications-toasts .notification-toast").filter({ hasText: text }).first();
}

/** Visible editor lines, top to bottom, with ghost text and injected text included. */
export async function editorLines(page: Page): Promise<string[]> {
  const lines = await page.locator(".editor-instance .monaco-editor .view-lines .view-line").all();
  const read = await Promise.all(
    lines.map(async (line) => {
      const style = (await line.getAttribute("style")) ?? "";
      const top = Number(/top:\s*(-?[\d.]+)px/.exec(style)?.[1] ?? 0);
      return { top, text: ((await line.textContent()) ?? "").replace(/\u00a0/g, " ") };
    }),
  );
  return read.sort((a, b) => a.top - b.top).map((l) => l.text);
}

/** The ghost text (inline completion) currently shown, or "" when none. */
export async function ghostText(page: Page): Promise<string> {
  const parts = await page
    .locator(".editor-instance .monaco-editor .ghost-text-decoration, .editor-instance .monaco-editor .ghost-text")
    .allTextContents();
  return parts.join("").replace(/\u00a0/g, " ");
}

/** The label of the selected row of the open suggest widget ("" when none is). */
export async function selectedSuggestion(page: Page): Promise<string> {
  const row = page.locator(".editor-widget.suggest-widget.visible .monaco-list-row.focused").first();
  return (await row.count()) ? ((await row.getAttribute("aria-label")) ?? "") : "";
}

/** Labels of the rows in the open suggest widget. */
export async function suggestions(page: Page): Promise<string[]> {
  const rows = page.locator(".editor-widget.suggest-widget.visible .monaco-list-row");
  return (await rows.all().then((all) => Promise.all(all.map((r) => r.getAttribute("aria-label"))))).map((l) => l ?? "");
}

/** The text of the language status hover (the `{}` entry in the status bar). */
export async function languageStatusText(page: Page): Promise<string> {
  const entry = page.locator('[id="status.languageStatus"]');
  await waitFor("the language status entry", () => entry.isVisible(), 30_000);
  // hover afresh each time: another hover (a notification's tooltip) may be showing
  await page.mouse.move(0, 0);
  await entry.hover();
  const hover = page.locator(".monaco-hover, .workbench-hover").filter({ hasText: /charcode: / }).filter({ hasNotText: /Python environment is ready/ });
  await waitFor("the language status hover", () => hover.first().isVisible(), 10_000);
  return (await hover.first().innerText()).replace(/\u00a0/g, " ");
}

/** Dismisses every notification (they cover the status bar hovers). */
export async function clearNotifications(page: Page): Promise<void> {
  await runCommand(page, "Notifications: Clear All Notifications");
  await waitFor("the notifications to close", async () => (await toasts(page)).length === 0, 10_000);
}

export async function editorHasFocus(page: Page): Promise<boolean> {
  return page.locator(".editor-instance .monaco-editor.focused").isVisible();
}

/** Closes hovers and widgets, and puts the focus back into the editor. */
export async function focusEditor(page: Page): Promise<void> {
  await page.keyboard.press("Escape");
  await page.mouse.move(0, 0);
  await page.locator(".editor-instance .monaco-editor .view-lines").first().click({ position: { x: 5, y: 5 } });
}
