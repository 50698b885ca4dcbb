/**
 * Server: the charcode language server's lifecycle. Finds the interpreter
 * (interpreterDiscovery.ts), starts `<python> -m charcode.server` over stdio with
 * vscode-languageclient, restarts through a queue, forwards setting changes
 * (`workspace/didChangeConfiguration`), and keeps the language status items
 * (status.ts) in step with the server and its models.
 */
import * as os from "os";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  RevealOutputChannelOn,
  type ServerOptions,
  State,
} from "vscode-languageclient/node";

import { existingPrivateEnvPython } from "./environmentCreation";
import { delay, EditsWhileStarting, lspInlineContext, middlewareDelay } from "./inline";
import {
  candidateList,
  probeInterpreter,
  pythonExtensionInterpreter,
  type Resolution,
  resolveInterpreter,
  SOURCE_LABEL,
} from "./interpreterDiscovery";
import { errorMessage, showWithOpenLogs } from "./log";
import { RestartQueue } from "./queue";
import {
  classifyChange,
  didChangeConfigurationSettings,
  readSettings,
  SECTION,
  serverSettings,
  type Settings,
} from "./settings";
import { type LanguageStatus, type ModelInfoResult } from "./status";

/** executeCommand ids served by the language server (DESIGN.md). */
export const SERVER_COMMANDS = {
  hallucinate: "charcode.hallucinateFunction",
  train: "charcode.train",
  modelInfo: "charcode.modelInfo",
} as const;

export type MissingPythonHandler = (resolution: Resolution, settings: Settings) => void;

export class ServerManager implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private python: string | undefined;
  private readonly queue = new RestartQueue(() => this.restartNow());
  private readonly disposables: vscode.Disposable[] = [];
  private readonly clientDisposables: vscode.Disposable[] = [];
  private readonly shownProblems = new Set<string>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly editsWhileStarting = new EditsWhileStarting();

  /** called when no interpreter has charcode; setup.ts offers to make one */
  onMissingPython: MissingPythonHandler = () => undefined;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
    private readonly status: LanguageStatus,
  ) {
    const watcher = vscode.workspace.createFileSystemWatcher("**/.charcode/models/*.safetensors");
    const refresh = () => this.scheduleModelRefresh();
    this.disposables.push(watcher, watcher.onDidCreate(refresh), watcher.onDidChange(refresh), watcher.onDidDelete(refresh));
    this.disposables.push(
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length) {
          this.editsWhileStarting.edited(e.document.uri.toString(), this.running !== undefined);
        }
      }),
    );
  }

  /** The current settings; invalid values are reported once and replaced by defaults. */
  settings(): Settings {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const { settings, problems } = readSettings(vscode.workspace.getConfiguration(SECTION), {
      workspaceFolder: folder,
    });
    for (const problem of problems) {
      if (!this.shownProblems.has(problem)) {
        this.shownProblems.add(problem);
        this.log.warn(`Invalid setting: ${problem}`);
        void vscode.window
          .showWarningMessage(`charcode: invalid setting ${problem}.`, "Open Settings")
          .then((choice) => {
            if (choice) {
              void vscode.commands.executeCommand("workbench.action.openSettings", SECTION);
            }
          });
      }
    }
    return settings;
  }

  /** The running client, or undefined. */
  get running(): LanguageClient | undefined {
    return this.client?.state === State.Running ? this.client : undefined;
  }

  get interpreter(): string | undefined {
    return this.python;
  }

  /** Restarts (or starts) the server; concurrent calls collapse into one more restart. */
  restart(): Promise<void> {
    return this.queue.request();
  }

  /** Sends `workspace/executeCommand` to the server (not through VS Code's command registry). */
  async executeCommand<T>(
    command: string,
    args: unknown[],
    token?: vscode.CancellationToken,
    workDoneToken?: string,
  ): Promise<T> {
    const client = this.running;
    if (!client) {
      throw new Error("the charcode language server is not running");
    }
    return (await client.sendRequest(
      ExecuteCommandRequest.type,
      { command, arguments: args, workDoneToken },
      token,
    )) as T;
  }

  /** Asks the server which model each language uses and shows it in the status items. */
  async refreshModels(): Promise<ModelInfoResult | undefined> {
    if (!this.running) {
      return undefined;
    }
    try {
      const info = await this.executeCommand<ModelInfoResult>(SERVER_COMMANDS.modelInfo, []);
      this.status.setModels(info ?? { languages: {} });
      return info;
    } catch (e) {
      this.log.warn(`charcode.modelInfo failed: ${errorMessage(e)}`);
      return undefined;
    }
  }

  scheduleModelRefresh(): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => void this.refreshModels(), 500);
  }

  onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
    const impact = classifyChange((s) => event.affectsConfiguration(s));
    if (!impact.any) {
      return;
    }
    const settings = this.settings();
    this.status.setLanguages(settings.languages);
    if (impact.restart) {
      this.log.info("Interpreter or languages changed: restarting the server");
      void this.restart();
      return;
    }
    this.updateState();
    const client = this.running;
    if (impact.notifyServer && client) {
      client
        .sendNotification(DidChangeConfigurationNotification.type, {
          settings: didChangeConfigurationSettings(settings),
        })
        .then(
          () => this.scheduleModelRefresh(),
          (e) => this.log.error(`didChangeConfiguration failed: ${errorMessage(e)}`),
        );
    }
  }

  /** Marks the status items as installing (setup.ts, while it makes the environment). */
  setInstalling(installing: boolean): void {
    this.status.setState(installing ? "installing" : "noPython");
  }

  private updateState(): void {
    const client = this.client;
    if (client?.state === State.Running) {
      this.status.setState(this.settings().enable ? "running" : "disabled");
      this.scheduleModelRefresh();
    } else if (client?.state === State.Starting) {
      this.status.setState("starting");
    }
  }

  private async restartNow(): Promise<void> {
    try {
      await this.stop();
      await this.start();
    } catch (e) {
      // never a silent failure: whatever went wrong is logged and shown
      const message = errorMessage(e);
      this.log.error(`Starting charcode failed: ${e instanceof Error ? (e.stack ?? message) : message}`);
      this.status.setState("failed");
      void showWithOpenLogs(
        vscode.window,
        this.log,
        "error",
        `charcode: starting the language server failed: ${message}`,
        "Restart",
      ).then((choice) => {
        if (choice === "Restart") {
          void this.restart();
        }
      });
    }
  }

  private async resolve(settings: Settings): Promise<Resolution> {
    const resource = vscode.window.activeTextEditor?.document.uri ?? vscode.workspace.workspaceFolders?.[0]?.uri;
    const candidates = candidateList({
      setting: settings.pythonPath,
      pythonExtension: settings.pythonPath
        ? undefined
        : await pythonExtensionInterpreter(vscode, resource, this.log),
      privateEnv: existingPrivateEnvPython(this.context.globalStorageUri.fsPath),
    });
    const resolution = await resolveInterpreter(candidates, (p) => probeInterpreter(p));
    for (const { candidate, probe } of resolution.tried) {
      const what = probe.ok
        ? `ok, Python ${probe.version}, charcode ${probe.charcodeVersion ?? "?"}`
        : probe.problem;
      this.log.info(`Interpreter ${candidate.python} (${SOURCE_LABEL[candidate.source]}): ${what}`);
    }
    return resolution;
  }

  private async start(): Promise<void> {
    const settings = this.settings();
    this.status.setLanguages(settings.languages);
    this.status.setState("starting");

    // 1) an interpreter that has charcode
    const resolution = await this.resolve(settings);
    if (!resolution.found) {
      this.python = undefined;
      this.status.setState("noPython");
      this.onMissingPython(resolution, settings);
      return;
    }
    const python = resolution.found.probe.executable ?? resolution.found.candidate.python;
    this.python = python;

    // 2) the client
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const serverOptions: ServerOptions = {
      command: python,
      // no `transport`: with TransportKind.stdio the client appends "--stdio",
      // which `python -m charcode.server` does not take (stdio is its default)
      args: ["-m", "charcode.server"],
      options: {
        cwd: folder ?? os.homedir(),
        env: { ...process.env, PYTHONUNBUFFERED: "1" },
      },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: settings.languages.flatMap((language) => [
        { scheme: "file", language },
        { scheme: "untitled", language },
      ]),
      outputChannel: this.log,
      traceOutputChannel: this.log,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: serverSettings(settings),
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          const current = this.settings();
          if (!current.enable) {
            return null;
          }
          if (
            context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic &&
            !(await delay(middlewareDelay(current.debounce), token))
          ) {
            return null;
          }
          // vscode-languageclient 9.0.1 forwards the context unconverted (see inline.ts)
          const fixed = lspInlineContext(context) as unknown as vscode.InlineCompletionContext;
          return next(document, position, fixed, token);
        },
        provideCompletionItem: (document, position, context, token, next) =>
          this.settings().enable ? next(document, position, context, token) : null,
      },
    };
    const client = new LanguageClient("charcode", "charcode", serverOptions, clientOptions);
    // ghost text: LSP 3.18 inline completion is a proposed feature in vscode-languageclient 9.x
    client.registerProposedFeatures();
    this.clientDisposables.push(
      client.onDidChangeState((e) => {
        if (client !== this.client) {
          return;
        }
        if (e.newState === State.Stopped && !this.stopping) {
          this.log.error("The charcode language server stopped");
          this.status.setState("stopped");
        } else {
          this.updateState();
        }
      }),
    );
    this.client = client;

    // 3) start it
    this.log.info(`Starting ${python} -m charcode.server`);
    try {
      await client.start();
    } catch (e) {
      const message = errorMessage(e);
      this.log.error(`The charcode language server did not start: ${message}`);
      this.status.setState("failed");
      void showWithOpenLogs(
        vscode.window,
        this.log,
        "error",
        `charcode: the language server did not start with ${python} (${message}). The log has its output.`,
        "Restart",
      ).then((choice) => {
        if (choice === "Restart") {
          void this.restart();
        }
      });
      return;
    }
    this.log.info(`charcode language server running (${python})`);
    this.updateState();
    this.askForGhostTextAgain();
    await this.refreshModels();
  }

  /**
   * If the user typed into the active editor while the server was starting,
   * VS Code asked for ghost text when charcode had no provider yet and will
   * not ask again until the next key: ask now (see EditsWhileStarting).
   */
  private askForGhostTextAgain(): void {
    const editor = vscode.window.activeTextEditor;
    if (!this.editsWhileStarting.take(editor?.document.uri.toString()) || !editor) {
      return;
    }
    const settings = this.settings();
    const { document } = editor;
    if (!settings.enable || !settings.languages.includes(document.languageId) || !["file", "untitled"].includes(document.uri.scheme)) {
      return;
    }
    this.log.info(`${document.uri.toString()} was edited while the server started: asking for ghost text`);
    void vscode.commands.executeCommand("editor.action.inlineSuggest.trigger").then(undefined, (e: unknown) =>
      this.log.warn(`Asking for ghost text failed: ${errorMessage(e)}`),
    );
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) {
      return;
    }
    this.stopping = true;
    for (const d of this.clientDisposables.splice(0)) {
      d.dispose();
    }
    try {
      await client.dispose(5000);
    } catch (e) {
      this.log.warn(`Stopping the server: ${errorMessage(e)}`);
    } finally {
      this.stopping = false;
    }
  }

  dispose(): void {
    clearTimeout(this.refreshTimer);
    for (const d of this.disposables) {
      d.dispose();
    }
  }
}
