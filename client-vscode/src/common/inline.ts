/**
 * Ghost text (LSP `textDocument/inlineCompletion`, LSP 3.18) glue that
 * vscode-languageclient 9.0.1 gets wrong or leaves to us:
 *
 * - it forwards VS Code's trigger kind unchanged, but VS Code numbers them
 *   Invoke=0/Automatic=1 and LSP Invoked=1/Automatic=2;
 * - it forwards `selectedCompletionInfo.range` as a VS Code Range, which
 *   serialises as `[start, end]`, not as an LSP Range;
 * - debouncing: typing fast must not queue a model request per keystroke
 *   (VS Code already waits 50 ms and cancels; see middlewareDelay);
 * - typing while the server starts (EditsWhileStarting).
 *
 * Pure functions over plain shapes, so they are tested without VS Code.
 */

interface PositionLike {
  line: number;
  character: number;
}

interface RangeLike {
  start: PositionLike;
  end: PositionLike;
}

/** `vscode.InlineCompletionContext`, structurally. */
export interface VsInlineContext {
  readonly triggerKind: number;
  readonly selectedCompletionInfo?: { readonly range: RangeLike; readonly text: string };
}

/** LSP `InlineCompletionContext`. */
export interface LspInlineContext {
  triggerKind: 1 | 2;
  selectedCompletionInfo?: { range: RangeLike; text: string };
}

/** VS Code's `InlineCompletionTriggerKind.Invoke` (0) and `.Automatic` (1). */
export const VS_INVOKE = 0;
export const VS_AUTOMATIC = 1;

export function lspInlineContext(context: VsInlineContext): LspInlineContext {
  const info = context.selectedCompletionInfo;
  const position = (p: PositionLike): PositionLike => ({ line: p.line, character: p.character });
  return {
    triggerKind: context.triggerKind === VS_INVOKE ? 1 : 2,
    selectedCompletionInfo: info
      ? { range: { start: position(info.range.start), end: position(info.range.end) }, text: info.text }
      : undefined,
  };
}

/**
 * VS Code itself waits 50 ms after a keystroke before it calls an inline
 * completion provider (its "InlineCompletionsDebounce"), and cancels the call
 * when the next key comes. `charcode.debounce` is the whole wait after a
 * keystroke, so the middleware waits only the part VS Code has not: waiting
 * the full setting on top of VS Code's 50 ms delayed every ghost text by that
 * much and, at 60 ms per key, let next to no request reach the server while
 * typing.
 */
export const VSCODE_INLINE_DEBOUNCE_MS = 50;

/** What the middleware still waits, in ms, for a `charcode.debounce` of `settingMs`. */
export function middlewareDelay(settingMs: number): number {
  return Math.max(0, settingMs - VSCODE_INLINE_DEBOUNCE_MS);
}

/** The part of a CancellationToken that `delay` needs. */
export interface CancellationLike {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => unknown): { dispose(): unknown };
}

/**
 * Waits `ms`, or less if the token is cancelled first. Resolves true when the
 * wait ran out (go ahead), false when cancelled (VS Code cancels the request
 * of the previous keystroke when the next one comes).
 */
export function delay(ms: number, token: CancellationLike): Promise<boolean> {
  if (token.isCancellationRequested) {
    return Promise.resolve(false);
  }
  if (ms <= 0) {
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      subscription.dispose();
      resolve(!token.isCancellationRequested);
    }, ms);
    const subscription = token.onCancellationRequested(() => {
      clearTimeout(timer);
      subscription.dispose();
      resolve(false);
    });
  });
}

/**
 * Typing while the server starts. VS Code asks for ghost text when the user
 * types (or asks explicitly), and only the providers registered at that
 * moment. While the language server starts (on activation, a restart, after
 * the environment is created: a few seconds) charcode has no provider, so a
 * user who types then and stops got no ghost text until the next key. This
 * remembers which documents were edited while the server was not running, so
 * that once it runs the server manager asks again for the active editor.
 */
export class EditsWhileStarting {
  private readonly uris = new Set<string>();

  /** Records an edit of `uri`; only edits made while the server is not running count. */
  edited(uri: string, serverRunning: boolean): void {
    if (!serverRunning) {
      this.uris.add(uri);
    }
  }

  /** Whether `uri` was edited while the server was not running; forgets every edit. */
  take(uri: string | undefined): boolean {
    const edited = uri !== undefined && this.uris.has(uri);
    this.uris.clear();
    return edited;
  }
}
