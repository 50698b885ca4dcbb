"""`charcode eval`: measure a model on files or folders (docs/EVAL.md).

Tasks: bits (bits per character, each file read whole), keystrokes (a
simulated user typing with ghost text, against word completion) and
hallucinate (valid whole functions). All run on the core without torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from charcode.training.cli_common import CliError, Subcommands, model_args, positive_int
from charcode.training.languages import get_language
from charcode.training.symbols import utf8_complete_prefix

from .cli_commands import CommandModel, load_model, model_language
from .core.settings import Settings
from .measure.bits import adaptive_bits, bits_by_position, file_bits, read_head
from .measure.functions import DEFAULT_FUNCTION_CHARS, MAX_FUNCTION_CHARS, evaluate_hallucinate
from .measure.keystrokes import (
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_FILES,
    Script,
    evaluate_keystrokes,
    head,
)

EVAL_TASKS = ["bits", "keystrokes", "hallucinate"]


def add_eval_command(sub: Subcommands) -> None:
    e = sub.add_parser(
        "eval",
        help="measure a model: bits per character, keystrokes saved, valid hallucinated functions",
        description="Tasks: bits (bits per character), keystrokes (a simulated user typing the "
        "files with charcode's inline completion, against word-based suggestions), hallucinate "
        "(syntactic validity of whole functions). See docs/EVAL.md.",
    )
    model_args(e)
    e.add_argument("paths", nargs="*", type=Path, help="files or folders (bits, keystrokes)")
    e.add_argument(
        "--task", choices=EVAL_TASKS, default="bits", help="what to measure (default bits)"
    )
    e.add_argument(
        "--split",
        choices=["all", "val"],
        default="all",
        help="folders: every file, or only those a training run on the same folders held out",
    )
    e.add_argument(
        "--val-fraction",
        type=float,
        default=0.05,
        help="--split val: the training run's --val-fraction (default 0.05)",
    )
    e.add_argument(
        "--split-by",
        choices=["project", "file"],
        help="--split val: the training run's --split-by (default: the split the model's "
        "checkpoint records, file for a checkpoint that records none; project without a model)",
    )
    e.add_argument(
        "--max-files",
        type=positive_int,
        help="at most N files, spread evenly over the sorted list (default: all; keystrokes 20)",
    )
    e.add_argument(
        "--max-chars",
        type=positive_int,
        help="the first N characters of each file (default: all; keystrokes 2000), or "
        "hallucinate's length cap per function (default 3000)",
    )
    e.add_argument(
        "--seeds",
        type=positive_int,
        default=100,
        help="hallucinate: functions to write, seeds 0..N-1 (default 100)",
    )
    e.add_argument(
        "--temperature",
        type=float,
        help="hallucinate: sampling temperature (default: the server's, 1.0)",
    )
    e.add_argument(
        "--no-syntax-check",
        dest="syntax_check",
        action="store_false",
        help="hallucinate: sample without the syntax guard (the model alone)",
    )
    e.add_argument(
        "--adaptive",
        action="store_true",
        help="bits: the files, in sorted path order, as one project; each byte predicted by "
        "the LSTM mixed with what was learned so far, then learned (as a compressor)",
    )
    e.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="keystrokes: before each file is typed, learn DIR's files of the language but "
        "that one, as an editor opened on the project would",
    )
    e.add_argument(
        "--inline-max-lines",
        type=positive_int,
        default=1,
        help="keystrokes: the server's inlineMaxLines setting (default 1)",
    )
    e.add_argument(
        "--ghost-min-prob",
        type=float,
        default=None,
        metavar="P",
        help="keystrokes: the server's inlineMinProbability setting: ghost text ends at the "
        "last token boundary where its probability is still >= P (default 0.5)",
    )
    e.add_argument("--plot", type=Path, metavar="PNG", help="also draw a figure (needs matplotlib)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_eval)


def find_eval_files(
    paths: list[Path],
    language_id: str,
    split: str = "all",
    val_fraction: float = 0.05,
    max_files: int | None = None,
    split_by: str = "project",
) -> list[Path]:
    """The files to evaluate on: files as given, then the folders' files as a corpus would
    keep them (with split "val", only the files a training run on the same folders holds
    out); at most max_files of them, evenly spread over that order."""
    from charcode.training.corpus import collect_files, split_sources

    if not paths:
        raise CliError("give the files or folders to evaluate on")
    for p in paths:
        if not p.exists():
            raise CliError(f"{p} does not exist")
    files = [p for p in paths if not p.is_dir()]
    folders = [p for p in paths if p.is_dir()]
    if folders:
        found, _ = collect_files(folders, language_id)
        if split == "val":
            is_val, _ = split_sources(found, folders, val_fraction, split_by)
            found = [f for f, v in zip(found, is_val, strict=True) if v]
            if not found:
                raise CliError(
                    f"no held-out files in {' '.join(map(str, folders))} at --val-fraction {val_fraction}"
                )
        files.extend(f.path for f in found)
    if not files:
        exts = " ".join(get_language(language_id).extensions)
        raise CliError(f"no {language_id} files ({exts}) found in {' '.join(map(str, paths))}")
    if max_files is not None and len(files) > max_files:
        n = len(files)
        files = [files[(2 * i + 1) * n // (2 * max_files)] for i in range(max_files)]
    return files


def eval_files(
    args, language_id: str, model: CommandModel | None = None, default_max_files: int | None = None
) -> list[Path]:
    """find_eval_files with the eval command's options. With --split val and no PATH, the
    folders the checkpoint was trained on (its metadata's corpus roots)."""
    if not 0 <= args.val_fraction < 1:
        raise CliError(f"--val-fraction {args.val_fraction} is not in [0, 1); pass e.g. 0.05")
    paths = args.paths
    if not paths and args.split == "val" and model is not None:
        corpus = (model.meta.get("training") or {}).get("corpus") or {}
        if not corpus.get("roots"):
            raise CliError(f"{model.path} does not record its corpus folders; give them as PATH")
        paths = [Path(r) for r in corpus["roots"]]
        print(f"charcode: the held-out files of {' '.join(corpus['roots'])}", file=sys.stderr)
    max_files = args.max_files if args.max_files is not None else default_max_files
    return find_eval_files(
        paths, language_id, args.split, args.val_fraction, max_files, _split_by(args, model)
    )


def _split_by(args, model: CommandModel | None) -> str:
    """--split-by, else the split the checkpoint was trained with: checkpoints from before the
    project split record none and were split by file."""
    if getattr(args, "split_by", None):
        return args.split_by
    if model is None:
        return "project"
    corpus = (model.meta.get("training") or {}).get("corpus") or {}
    return (corpus.get("split") or {}).get("by") or ("file" if corpus else "project")


def check_plot(args) -> bool:
    """Whether --plot can be drawn; says why not (on stderr) when it cannot."""
    if args.plot is None:
        return False
    from charcode.training.plot import PlotUnavailable, pyplot

    try:
        pyplot()
    except PlotUnavailable as e:
        print(f"charcode: note: {e}; no figure written", file=sys.stderr)
        return False
    return True


def cmd_eval(args) -> int:
    plot = check_plot(args)
    model = load_model(args)
    language = model_language(args, model) if args.task != "bits" else _bits_language(args, model)
    if args.task == "bits":
        result = _bits(args, model, language, plot)
    elif args.task == "keystrokes":
        result = _keystrokes(args, model, language)
    else:
        result = _hallucinate(args, model, language)
    result["model"] = str(model.path)
    if plot and args.task != "bits":
        result["plot"] = str(_draw(result, args.plot, model.path.name))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(format_result(result))
    return 0


def _bits_language(args, model: CommandModel) -> str:
    language = args.language or model.language or "python"
    get_language(language)
    return language


def _bits(args, model: CommandModel, language: str, plot: bool) -> dict:
    if args.adaptive:
        return _adaptive_bits(args, model, language)
    files = eval_files(args, language, model)
    docs = [read_head(f, args.max_chars) for f in files]
    if not any(docs):
        raise CliError("the files are empty")
    per_file = []
    with _bar(sum(map(len, docs)), "chars") as bar:
        for d in docs:
            per_file.append(file_bits(model.runtime, d))
            bar.update(len(d))
    chars = sum(len(b) for b in per_file)
    total = float(sum(b.sum() for b in per_file))
    result = {
        "task": "bits",
        "language": language,
        "bits_per_char": round(total / chars, 4),
        "chars": chars,
        "files": len(files),
    }
    if plot:
        from charcode.training.plot import bits_by_position as draw

        result["by_position"] = bins = bits_by_position(per_file)
        title = f"{model.path.name}: bits/char by position ({len(files)} files)"
        result["plot"] = str(draw(bins, args.plot, title))
    return result


def _adaptive_bits(args, model: CommandModel, language: str) -> dict:
    files = sorted(eval_files(args, language, model), key=lambda p: str(p))
    docs = [read_head(f, args.max_chars) for f in files]
    if not any(docs):
        raise CliError("the files are empty")
    with _bar(sum(map(len, docs)), "chars") as bar:
        static, adaptive = adaptive_bits(model.runtime, docs, progress=bar.update)
    chars = sum(len(d) for d in docs)
    return {
        "task": "bits",
        "language": language,
        "adaptive": True,
        "bits_per_char": round(float(sum(a.sum() for a in adaptive)) / chars, 4),
        "static_bits_per_char": round(float(sum(b.sum() for b in static)) / chars, 4),
        "chars": chars,
        "files": len(files),
    }


def _workspace_files(folder: Path, language: str) -> list[tuple[str, bytes]]:
    from charcode.training.corpus import iter_source_files

    if not folder.is_dir():
        raise CliError(f"--workspace {folder} is not a folder")
    return [(str(f.path.resolve()), data) for f, data in iter_source_files([folder], language)]


def _keystrokes(args, model: CommandModel, language: str) -> dict:
    files = eval_files(args, language, model, default_max_files=DEFAULT_MAX_FILES)
    max_chars = args.max_chars or DEFAULT_MAX_CHARS
    texts = []
    for f in files:
        with open(f, "rb") as fh:  # a character is at most 4 bytes
            texts.append((str(f), head(utf8_complete_prefix(fh.read(4 * max_chars)), max_chars)))
    workspace = None
    if args.workspace is not None:
        workspace = _workspace_files(args.workspace, language)
        texts = [(str(Path(name).resolve()), data) for name, data in texts]
    total = sum(Script.of(t).chars for _, t in texts)
    with _bar(total, "chars") as bar:
        result = evaluate_keystrokes(
            model.runtime,
            language,
            texts,
            settings=Settings(inline_max_lines=args.inline_max_lines),
            progress=bar.update,
            workspace=workspace,
            min_prob=args.ghost_min_prob,
        )
    result["settings"].update(max_files=len(files), max_chars=max_chars, split=args.split)
    return result


def _hallucinate(args, model: CommandModel, language: str) -> dict:
    if args.paths:
        print("charcode: note: --task hallucinate reads no files; PATHs ignored", file=sys.stderr)
    max_chars = args.max_chars or DEFAULT_FUNCTION_CHARS
    if max_chars > MAX_FUNCTION_CHARS:
        raise CliError(f"--max-chars for hallucinate is at most {MAX_FUNCTION_CHARS:,}")
    if args.temperature is not None and not 0 <= args.temperature <= 5:
        raise CliError(f"--temperature must be from 0 to 5, got {args.temperature}")
    with _bar(args.seeds, "functions") as bar:
        return evaluate_hallucinate(
            model.runtime,
            language,
            args.seeds,
            max_chars,
            args.temperature,
            progress=bar.update,
            syntax_check=args.syntax_check,
        )


def _bar(total: int, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, disable=None, leave=False)


def format_result(r: dict) -> str:
    if r["task"] == "bits":
        lines = [
            f"{r['bits_per_char']:.4f} bits/char over {r['chars']:,} characters "
            f"in {r['files']} file(s)"
            + (f" adaptive (static {r['static_bits_per_char']:.4f})" if r.get("adaptive") else "")
        ]
        for b in r.get("by_position", []):
            lines.append(
                f"  chars {b['start']:>7}-{b['end'] - 1:<7} {b['bits_per_char']:.4f} bits/char"
            )
    elif r["task"] == "keystrokes":
        lines = [
            f"{r['files']} {r['language']} file(s), {r['chars']:,} characters to type "
            f"(inlineMaxLength {r['settings']['inline_max_length']}, indentation free: "
            f"{r['settings']['free_indent']})",
            f"{'':22}{'saved':>8}{'accepted':>10}{'shown/100ch':>13}{'p50 ms':>9}{'p95 ms':>9}",
        ]
        for label, s in (
            ("charcode", r["charcode"]),
            ("charcode+partial", r["charcode"]["partial_accept"]),
            ("word baseline", r["word_baseline"]),
            *(
                [("word baseline+workspace", r["word_baseline_workspace"])]
                if "word_baseline_workspace" in r
                else []
            ),
        ):
            lat = s["latency_ms"]
            lines.append(
                f"{label:22}{100 * s['keystrokes_saved']:7.1f}%{100 * s['acceptance_rate']:9.1f}%"
                f"{s['shown_per_100_chars']:13.1f}{lat['p50']:9.2f}{lat['p95']:9.2f}"
            )
    else:
        valid = r["validity_rate"]
        ok = (
            f"{100 * valid:.1f}% valid ({r['checker']})"
            if valid is not None
            else f"validity not checked: {r['checker_unavailable']}"
        )
        lines = [
            f"{r['seeds']} {r['language']} functions at temperature {r['temperature']}"
            f"{', syntax guard on' if r.get('syntax_guard') else ''}: {ok}",
            f"ended by the stop rule: {100 * r['stop_rule_share']:.1f}% "
            f"({', '.join(f'{k} {v}' for k, v in sorted(r['stopped'].items()))}); "
            f"mean length {r['mean_chars']:.0f} characters",
        ]
        if r["validity_rate_stopped_by_rule"] is not None:
            lines.append(
                f"valid among those the stop rule ended: {100 * r['validity_rate_stopped_by_rule']:.1f}%"
            )
    if "plot" in r:
        lines.append(f"figure: {r['plot']}")
    return "\n".join(lines)


def _draw(result: dict, path: Path, name: str) -> Path:
    from charcode.training import plot

    if result["task"] == "keystrokes":
        c, w = result["charcode"], result["word_baseline"]
        groups = {
            "keystrokes saved": {
                "charcode": c["keystrokes_saved"],
                "charcode + partial accept": c["partial_accept"]["keystrokes_saved"],
                "word baseline": w["keystrokes_saved"],
            },
            "acceptance rate": {
                "charcode": c["acceptance_rate"],
                "charcode + partial accept": c["partial_accept"]["acceptance_rate"],
                "word baseline": w["acceptance_rate"],
            },
        }
        title = f"{name}: {result['files']} files, {result['chars']:,} characters"
        return plot.bars(groups, path, "%", title)
    plt = plot.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    rows = result["functions"]
    for label, keep in (
        ("valid", lambda r: r["valid"] is True),
        ("invalid", lambda r: r["valid"] is False),
        ("not checked", lambda r: r["valid"] is None),
    ):
        lengths = [r["chars"] for r in rows if keep(r)]
        if lengths:
            ax.hist(lengths, bins=20, alpha=0.6, label=label)
    ax.set_xlabel("function length (characters)")
    ax.set_ylabel("functions")
    ax.set_title(f"{name}: {result['seeds']} hallucinated functions")
    ax.legend()
    return plot.save(fig, path)
