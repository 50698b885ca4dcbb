import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  type CancellationLike,
  delay,
  EditsWhileStarting,
  lspInlineContext,
  middlewareDelay,
  VS_AUTOMATIC,
  VS_INVOKE,
  VSCODE_INLINE_DEBOUNCE_MS,
} from "../../common/inline";

class Token implements CancellationLike {
  isCancellationRequested = false;
  private listeners: (() => unknown)[] = [];
  onCancellationRequested(listener: () => unknown) {
    this.listeners.push(listener);
    return { dispose: () => (this.listeners = this.listeners.filter((l) => l !== listener)) };
  }
  cancel() {
    this.isCancellationRequested = true;
    for (const l of this.listeners) {
      l();
    }
  }
  get listenerCount() {
    return this.listeners.length;
  }
}

describe("inline completion glue", () => {
  test("VS Code trigger kinds map to LSP's (Invoke 0 -> Invoked 1, Automatic 1 -> 2)", () => {
    assert.equal(lspInlineContext({ triggerKind: VS_INVOKE }).triggerKind, 1);
    assert.equal(lspInlineContext({ triggerKind: VS_AUTOMATIC }).triggerKind, 2);
  });

  test("the selected suggestion's range becomes a plain LSP range", () => {
    // a VS Code Range serialises as [start, end]; the server needs {start, end}
    class VsRange {
      constructor(
        readonly start: { line: number; character: number },
        readonly end: { line: number; character: number },
      ) {}
      toJSON() {
        return [this.start, this.end];
      }
    }
    const context = lspInlineContext({
      triggerKind: VS_AUTOMATIC,
      selectedCompletionInfo: { range: new VsRange({ line: 1, character: 2 }, { line: 1, character: 5 }), text: "foo" },
    });
    assert.deepEqual(JSON.parse(JSON.stringify(context)), {
      triggerKind: 2,
      selectedCompletionInfo: { range: { start: { line: 1, character: 2 }, end: { line: 1, character: 5 } }, text: "foo" },
    });
    assert.equal("selectedCompletionInfo" in JSON.parse(JSON.stringify(lspInlineContext({ triggerKind: 0 }))), false);
  });

  test("delay resolves true after the wait", async () => {
    const token = new Token();
    assert.equal(await delay(5, token), true);
    assert.equal(token.listenerCount, 0);
  });

  test("delay resolves false as soon as the request is cancelled", async () => {
    const token = new Token();
    const started = Date.now();
    const waiting = delay(10_000, token);
    token.cancel();
    assert.equal(await waiting, false);
    assert.ok(Date.now() - started < 1000);
    assert.equal(token.listenerCount, 0);
  });

  test("delay of 0 goes ahead at once; an already-cancelled token never does", async () => {
    assert.equal(await delay(0, new Token()), true);
    const cancelled = new Token();
    cancelled.cancel();
    assert.equal(await delay(0, cancelled), false);
  });
});

describe("debounce", () => {
  test("the middleware waits only what VS Code's own 50 ms leave of charcode.debounce", () => {
    assert.equal(VSCODE_INLINE_DEBOUNCE_MS, 50);
    assert.equal(middlewareDelay(50), 0);
    assert.equal(middlewareDelay(0), 0);
    assert.equal(middlewareDelay(75), 25);
    assert.equal(middlewareDelay(300), 250);
  });
});

describe("typing while the server starts", () => {
  test("a document edited while the server was not running is asked about once", () => {
    const edits = new EditsWhileStarting();
    edits.edited("file:///a.py", false);
    assert.equal(edits.take("file:///a.py"), true);
    assert.equal(edits.take("file:///a.py"), false);
  });

  test("edits while the server runs, or of another document, do not count", () => {
    const edits = new EditsWhileStarting();
    edits.edited("file:///a.py", true);
    assert.equal(edits.take("file:///a.py"), false);
    edits.edited("file:///b.py", false);
    assert.equal(edits.take("file:///a.py"), false);
    assert.equal(edits.take(undefined), false);
  });

  test("taking forgets every document", () => {
    const edits = new EditsWhileStarting();
    edits.edited("file:///a.py", false);
    edits.edited("file:///b.py", false);
    assert.equal(edits.take("file:///a.py"), true);
    assert.equal(edits.take("file:///b.py"), false);
  });
});
