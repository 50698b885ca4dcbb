import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { type MessageWindow, OPEN_LOGS, showWithOpenLogs } from "../../common/log";

/** A notification API that records what it shows and answers with `answer`. */
function fakeWindow(answer: string | undefined) {
  const shown: { severity: string; message: string; items: string[] }[] = [];
  const reply = (severity: string) => (message: string, ...items: unknown[]) => {
    shown.push({ severity, message, items: items as string[] });
    return Promise.resolve(answer);
  };
  const window = { showErrorMessage: reply("error"), showWarningMessage: reply("warning") } as unknown as MessageWindow;
  return { window, shown };
}

function fakeChannel() {
  const channel = { shows: 0, show: () => void channel.shows++ };
  return channel;
}

describe("notifications with Open Logs", () => {
  test("Open Logs comes after the caller's actions and reveals the channel", async () => {
    const { window, shown } = fakeWindow(OPEN_LOGS);
    const channel = fakeChannel();
    const choice = await showWithOpenLogs(window, channel, "error", "charcode: it broke", "Retry", "Open Settings");
    assert.equal(choice, undefined);
    assert.equal(channel.shows, 1);
    assert.deepEqual(shown, [{ severity: "error", message: "charcode: it broke", items: ["Retry", "Open Settings", OPEN_LOGS] }]);
  });

  test("the caller's action is returned and the channel stays closed", async () => {
    const { window, shown } = fakeWindow("Retry");
    const channel = fakeChannel();
    assert.equal(await showWithOpenLogs(window, channel, "warning", "charcode: careful", "Retry"), "Retry");
    assert.equal(channel.shows, 0);
    assert.equal(shown[0].severity, "warning");
  });

  test("a dismissed notification returns undefined", async () => {
    const { window, shown } = fakeWindow(undefined);
    const channel = fakeChannel();
    assert.equal(await showWithOpenLogs(window, channel, "error", "charcode: failed"), undefined);
    assert.equal(channel.shows, 0);
    assert.deepEqual(shown[0].items, [OPEN_LOGS]);
  });
});
