/**
 * Setup: when no interpreter has charcode, offer to create charcode's private
 * environment (a venv in the extension's global storage) and install the
 * charcode wheel shipped inside the .vsix (no torch: a few tens of MB), with
 * a cancellable progress notification. When training first needs torch,
 * offer to install it (torchInstall.ts) with the same kind of notification.
 * Every failure says what went wrong and how to fix it; nothing fails
 * silently.
 */
import * as path from "path";
import * as vscode from "vscode";

import { createPrivateEnvironment, findWheel, privateEnvDir, SetupError } from "./environmentCreation";
import { describeFailure, type Resolution, shortFailure } from "./interpreterDiscovery";
import { errorMessage, showWithOpenLogs } from "./log";
import type { ServerManager } from "./server";
import type { Settings } from "./settings";
import { ensureTorch, type TorchPlan, type TorchUi } from "./torchInstall";

export const CREATE_ENVIRONMENT = "Create Environment";
export const INSTALL_TORCH = "Install torch";

export class EnvironmentSetup {
  private offering = false;
  private creating: Promise<boolean> | undefined;
  private lastResolution: Resolution | undefined;
  /** the torch install running now, which a second Train on Workspace joins */
  private torchInstall: Promise<string> | undefined;
  /** interpreters seen with torch (the check imports torch: seconds) */
  private readonly hasTorch = new Set<string>();

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
    private readonly server: ServerManager,
  ) {}

  /** Called by the server manager when no interpreter works. */
  offer(resolution: Resolution, settings: Settings): void {
    this.lastResolution = resolution;
    const why = describeFailure(resolution);
    this.log.warn(why);
    if (this.offering || this.creating) {
      return;
    }
    this.offering = true;
    void this.ask(why, settings).finally(() => {
      this.offering = false;
    });
  }

  private async ask(why: string, settings: Settings): Promise<void> {
    if (settings.pythonPath) {
      // an explicit choice is never replaced behind the user's back
      const choice = await showWithOpenLogs(
        vscode.window,
        this.log,
        "error",
        `charcode: the interpreter in charcode.pythonPath cannot run the charcode server. ${why} ` +
          "Install charcode into it (`pip install <path to charcode>`), or clear the setting to let charcode use its own environment.",
        "Open Settings",
      );
      if (choice === "Open Settings") {
        await vscode.commands.executeCommand("workbench.action.openSettings", "charcode.pythonPath");
      }
      return;
    }
    const choice = await showWithOpenLogs(
      vscode.window,
      this.log,
      "warning",
      `charcode needs a Python with the charcode package (${shortFailure(this.lastResolution)}). ` +
        "Create a private environment for charcode? pip installs charcode, shipped with the extension, and its dependencies (NumPy, pygls: a few tens of MB).",
      CREATE_ENVIRONMENT,
      "Set Interpreter Path",
    );
    if (choice === CREATE_ENVIRONMENT) {
      await this.create();
    } else if (choice === "Set Interpreter Path") {
      await vscode.commands.executeCommand("workbench.action.openSettings", "charcode.pythonPath");
    }
  }

  /** Creates (or re-creates) the private environment, then restarts the server. */
  create(): Promise<boolean> {
    this.creating ??= this.createNow().finally(() => {
      this.creating = undefined;
    });
    return this.creating;
  }

  private basePythons(): string[] {
    const fromResolution = (this.lastResolution?.tried ?? [])
      .filter(({ candidate }) => candidate.source !== "privateEnv")
      .map(({ candidate, probe }) => probe.executable ?? candidate.python);
    const defaults = process.platform === "win32" ? ["py", "python"] : ["python3", "python"];
    return [...new Set([...fromResolution, ...defaults])];
  }

  private async createNow(): Promise<boolean> {
    const settings = this.server.settings();
    const envDir = privateEnvDir(this.context.globalStorageUri.fsPath);
    const wheel = findWheel(path.join(this.context.extensionPath, "bundled"));
    if (!wheel) {
      void this.fail(
        new SetupError(
          "This build of the extension has no charcode wheel inside (bundled/charcode-*.whl).",
          "Install charcode into a Python yourself (`pip install <path to charcode>`) and set charcode.pythonPath, or install a .vsix built with `npm run package`.",
        ),
      );
      return false;
    }
    this.log.info(`Creating charcode's private environment in ${envDir} from ${wheel}`);
    this.server.setInstalling(true);
    let cancelled = false;
    try {
      const probe = await vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: "charcode: setting up the Python environment",
          cancellable: true,
        },
        (progress, token) => {
          const abort = new AbortController();
          token.onCancellationRequested(() => {
            cancelled = true;
            abort.abort();
          });
          return createPrivateEnvironment({
            basePythons: this.basePythons(),
            envDir,
            wheel,
            pipExtraArgs: settings.pipExtraArgs,
            log: this.log,
            onStep: (message) => progress.report({ message }),
            signal: abort.signal,
          });
        },
      );
      this.log.info(`Private environment ready: ${probe.executable ?? probe.python}`);
      // a new environment has no torch, whatever the old one had
      this.hasTorch.clear();
      void vscode.window.showInformationMessage(
        `charcode: the Python environment is ready (charcode ${probe.charcodeVersion ?? ""}, Python ${probe.version ?? "?"}). Starting the language server.`,
      );
    } catch (e) {
      this.server.setInstalling(false);
      if (cancelled) {
        this.log.warn("Environment setup cancelled");
        void vscode.window
          .showWarningMessage("charcode: environment setup cancelled; completions stay off until it is done.", CREATE_ENVIRONMENT)
          .then((choice) => (choice ? this.create() : undefined));
      } else {
        // not awaited: "Retry" must find this attempt finished
        void this.fail(e);
      }
      return false;
    }
    await this.server.restart();
    return true;
  }

  /**
   * True when `python` (the server's interpreter) has torch, or the user
   * accepted the offer to install it and it was installed; Train on
   * Workspace goes on only then. Each call makes its own offer (an earlier
   * one may sit unanswered in the notification center), but one pip runs at
   * a time: a second install joins the one running.
   */
  async ensureTorch(python: string): Promise<boolean> {
    if (this.hasTorch.has(python)) {
      return true;
    }
    const settings = this.server.settings();
    const ok = await ensureTorch({
      python,
      requirement: settings.torchRequirement,
      pipExtraArgs: settings.pipExtraArgs,
      ui: this.torchUi(),
      log: this.log,
    });
    if (ok) {
      this.hasTorch.add(python);
    }
    return ok;
  }

  private torchUi(): TorchUi {
    const privateEnv = privateEnvDir(this.context.globalStorageUri.fsPath);
    return {
      busy: (title, task) => Promise.resolve(vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title }, task)),
      offer: async (python: string, plan: TorchPlan, alternative: TorchPlan | undefined) => {
        const where = path.resolve(python).startsWith(privateEnv + path.sep)
          ? "charcode's Python environment"
          : python;
        const install = INSTALL_TORCH;
        const cpu = "CPU Build Instead";
        const choice = await vscode.window.showInformationMessage(
          `charcode: training needs PyTorch (completions do not), and ${where} has none. ` +
            `Install ${plan.what}?${alternative ? ` (${cpu}: ${alternative.what}.)` : ""} ` +
            "pip runs with a progress notification you can cancel.",
          install,
          ...(alternative ? [cpu] : []),
        );
        return choice === install ? plan : choice === cpu ? alternative : undefined;
      },
      progress: (title, task) => {
        this.torchInstall ??= Promise.resolve(
          vscode.window.withProgress(
            { location: vscode.ProgressLocation.Notification, title, cancellable: true },
            (progress, token) => {
              const abort = new AbortController();
              token.onCancellationRequested(() => abort.abort());
              return task((report) => progress.report(report), abort.signal);
            },
          ),
        ).finally(() => {
          this.torchInstall = undefined;
        });
        return this.torchInstall;
      },
      installed: (message) => vscode.window.setStatusBarMessage(message, 10_000),
      cancelled: (message) => void vscode.window.showInformationMessage(message),
      failed: async (error: SetupError) =>
        (await showWithOpenLogs(vscode.window, this.log, "error", `charcode: ${error.message} ${error.hint}`, "Retry")) ===
        "Retry",
    };
  }

  private async fail(error: unknown): Promise<void> {
    const setup = error instanceof SetupError ? error : undefined;
    const message = setup ? `${setup.message} ${setup.hint}` : `Setting up the environment failed: ${errorMessage(error)}`;
    this.log.error(message);
    if (setup?.details) {
      this.log.error(setup.details);
    }
    const choice = await showWithOpenLogs(vscode.window, this.log, "error", `charcode: ${message}`, "Retry", "Open Settings");
    if (choice === "Retry") {
      await this.create();
    } else if (choice === "Open Settings") {
      await vscode.commands.executeCommand("workbench.action.openSettings", "charcode");
    }
  }
}
