/**
 * Ghost text (LSP `textDocument/inlineCompletion`, LSP 3.18) glue that
 * vscode-languageclient 9.0.1 gets wrong or leaves to us:
 *
 * - it forwards VS Code's trigger kind unchanged, but VS Code numbers them
 *   Invoke=0/Automatic=1 and LSP Invoked=1/Automatic=2;
 * - it forwards `selectedCompletionInfo.range` as a VS Code Range, which
 *   serialises as `[start, end]`, not as an LSP Range;
 * - debouncing: typing fast must not queue a model request per keystroke.
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
