"""Reproducible corpora for the bundled models: pinned Debian packages -> source files.

`charcode corpus --language L [--dest DIR]` downloads the packages that recipes.json pins for
language L (`apt-get download NAME=VERSION`), checks each .deb's sha256 against the pin,
and extracts the language's files into DEST/L/<package>/<path inside the package>:

- only files with the language's extensions (training/languages.py), regular files only
  (symlinks and hard links are skipped: they duplicate other files);
- per package, `include` / `exclude` globs on the path inside the package, or inside its
  source tarball (linux-source ships the kernel as one .tar.xz, read as a stream);
- no file over the recipe's `max_file_bytes`, no empty file.

It then writes DEST/L/FILES.sha256 (a sorted `sha256sum` listing: `sha256sum -c` checks it)
and DEST/L/MANIFEST.json (packages, versions, sha256s, file counts, bytes, the tree hash and
the train command). `--check` re-hashes an existing corpus and compares it with the recipe's
`expect`. The train/validation split is not made here: `charcode train --repo DEST/L` makes
it, by a hash of each file's path relative to DEST/L (training/corpus.py, split_files).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .cli_common import CliError, Subcommands, run

RECIPES_PATH = Path(__file__).with_name("recipes.json")
RECIPE_FORMAT = 1
MANIFEST_NAME = "MANIFEST.json"
LISTING_NAME = "FILES.sha256"
_CHUNK = 1 << 20


class RecipeError(Exception):
    """A corpus cannot be built or checked; the message (one line) says what to do."""


# --- the recipe --------------------------------------------------------------------------


def load_recipes(path: Path = RECIPES_PATH) -> dict:
    """The recipe document (recipes.json)."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise RecipeError(
            f"{path} is missing; reinstall charcode (the recipe ships beside training/recipes.py)"
        ) from None
    except (OSError, ValueError) as e:
        raise RecipeError(f"cannot read the corpus recipes in {path}: {e}") from None
    if doc.get("format") != RECIPE_FORMAT:
        raise RecipeError(f"{path} has format {doc.get('format')}, expected {RECIPE_FORMAT}")
    return doc


def get_recipe(language: str, doc: dict | None = None) -> dict:
    doc = load_recipes() if doc is None else doc
    try:
        return doc["languages"][language]
    except KeyError:
        known = ", ".join(sorted(doc["languages"]))
        raise RecipeError(f"no corpus recipe for {language!r}; recipes exist for {known}") from None


def train_commands(recipe: dict, corpus: Path | str) -> list[str]:
    """The recipe's `charcode train` commands for a corpus folder, in order (later stages
    fine-tune the earlier ones' output with --init-from)."""
    stages = recipe["train"] if isinstance(recipe["train"], list) else [recipe["train"]]
    return [s.replace("{corpus}", shlex.quote(str(corpus))) for s in stages]


def train_command(recipe: dict, corpus: Path | str) -> str:
    """The train commands as one shell line."""
    return " && ".join(train_commands(recipe, corpus))


def deb_filename(pkg: dict) -> str:
    """apt's file name for a package: name_version_arch.deb, the epoch colon as %3a."""
    return f"{pkg['name']}_{pkg['version'].replace(':', '%3a')}_{pkg['architecture']}.deb"


def apt_spec(pkg: dict, pinned: bool = True) -> str:
    """`name[:arch][=version]` for apt-get download (the architecture only when not `all`)."""
    spec = pkg["name"]
    if pkg.get("architecture", "all") != "all":
        spec += f":{pkg['architecture']}"
    return f"{spec}={pkg['version']}" if pinned else spec


# --- globs -------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern:
    """`*` and `?` stay inside one folder; `**` spans folders (`a/**` is everything in a/,
    `**/t/**` is anything inside a folder t at any depth)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(path: str, pattern: str) -> bool:
    return _glob_regex(pattern).match(path) is not None


# --- selecting members -------------------------------------------------------------------


@dataclass
class Selection:
    """What to keep from one package's tar stream."""

    extensions: tuple[str, ...]
    max_file_bytes: int
    include: tuple[str, ...] = ("**",)
    exclude: tuple[str, ...] = ()
    strip_components: int = 0

    @classmethod
    def for_package(cls, recipe: dict, pkg: dict) -> Selection:
        return cls(
            extensions=tuple(recipe["extensions"]),
            max_file_bytes=int(recipe["max_file_bytes"]),
            include=tuple(pkg.get("include", ["**"])),
            exclude=tuple(pkg.get("exclude", [])),
            strip_components=int(pkg.get("strip_components", 0)) if pkg.get("tarball") else 0,
        )


def member_path(name: str, strip_components: int = 0) -> str | None:
    """A tar member's path, relative and normalised; None when it is unsafe (absolute, `..`)
    or is nothing once `strip_components` leading folders are dropped."""
    if name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    parts = parts[strip_components:]
    return "/".join(parts) or None


def skip_reason(member: tarfile.TarInfo, sel: Selection) -> tuple[str | None, str | None]:
    """(path, reason): reason None keeps the member at path; "" passes over it silently (not a
    file of the language, or outside the included folders); any other reason is counted."""
    path = member_path(member.name, sel.strip_components)
    if path is None:
        return None, "" if member.isdir() else "unsafe_path"
    if not path.endswith(sel.extensions):
        return path, ""
    if member.issym() or member.islnk():
        return path, "link"
    if not member.isfile():
        return path, ""
    if not any(glob_match(path, g) for g in sel.include):
        return path, ""  # outside the folders the recipe takes
    if any(glob_match(path, g) for g in sel.exclude):
        return path, "excluded"
    if member.size > sel.max_file_bytes:
        return path, "too_large"
    if member.size == 0:
        return path, "empty"
    return path, None


# --- .deb reading ------------------------------------------------------------------------


def _require(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise RecipeError(f"{tool} not found; {hint}")
    return found


@contextlib.contextmanager
def deb_data_tar(deb: Path) -> Iterator[tarfile.TarFile]:
    """The .deb's data archive as a tar stream (`dpkg-deb --fsys-tarfile`)."""
    dpkg_deb = _require(
        "dpkg-deb", "charcode corpus needs Debian's dpkg-deb (apt-get install dpkg)"
    )
    proc = subprocess.Popen(
        [dpkg_deb, "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    failure = None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            yield tar
            for _ in tar:  # read to the end, so that dpkg-deb finishes normally
                pass
    except tarfile.TarError as e:
        failure = str(e)
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        proc.stderr.close()
        returncode = proc.wait()
    if failure is not None or returncode != 0:
        why = (err.splitlines() or [failure or f"exit status {returncode}"])[-1]
        raise RecipeError(f"cannot read {deb}: {why}; delete it and run again")


@dataclass
class Extracted:
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    bytes: int = 0
    skipped: Counter = field(default_factory=Counter)


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> str:
    src = tar.extractfile(member)
    assert src is not None
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(dest, "wb") as out:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    os.utime(dest, (member.mtime, member.mtime))
    return digest.hexdigest()


def extract_members(tar: tarfile.TarFile, sel: Selection, out_dir: Path, result: Extracted):
    """Write the selected members of a tar stream under out_dir."""
    for member in tar:
        path, reason = skip_reason(member, sel)
        if reason is None:
            assert path is not None
            if path in result.files:  # a second entry for the same path replaces the first
                result.bytes -= (out_dir / path).stat().st_size
            result.files[path] = _write_member(tar, member, out_dir / path)
            result.bytes += member.size
        elif reason:
            result.skipped[reason] += 1


def extract_package(deb: Path, recipe: dict, pkg: dict, out_dir: Path) -> Extracted:
    """The package's selected files, written under out_dir (its own folder)."""
    sel = Selection.for_package(recipe, pkg)
    result = Extracted()
    out_dir.mkdir(parents=True, exist_ok=True)
    with deb_data_tar(deb) as tar:
        tarball = pkg.get("tarball")
        if not tarball:
            extract_members(tar, sel, out_dir, result)
            return result
        for member in tar:
            if member_path(member.name) == tarball and member.isfile():
                src = tar.extractfile(member)
                with tarfile.open(fileobj=src, mode="r|*") as inner:
                    extract_members(inner, sel, out_dir, result)
                return result
    raise RecipeError(f"{deb.name} holds no {tarball}; check the recipe's `tarball`")


# --- downloading -------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _apt_error(stderr: str) -> str:
    lines = [ln[2:].strip() for ln in stderr.splitlines() if ln.startswith("E:")]
    return "; ".join(lines) or (stderr.strip().splitlines() or ["apt-get failed"])[-1]


def _deb_field(deb: Path, name: str) -> str:
    out = subprocess.run(
        ["dpkg-deb", "--field", str(deb), name], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def _cached_deb(pkg: dict, debs_dir: Path, say: Callable[[str], None]) -> Path | None:
    """The pinned .deb in debs_dir when it is there with the pinned sha256."""
    cached = debs_dir / deb_filename(pkg)
    if not cached.is_file():
        return None
    if sha256_file(cached) == pkg["sha256"]:
        return cached
    say(f"{cached.name}: sha256 differs from the pin; downloading it again")
    cached.unlink()
    return None


def _apt_download(specs: list[str], folder: Path) -> subprocess.CompletedProcess:
    apt_get = _require(
        "apt-get",
        "charcode corpus downloads Debian packages with apt; elsewhere put the pinned .debs "
        "(names as in `charcode corpus --show`) into --debs DIR",
    )
    return subprocess.run(
        [apt_get, "download", "-q", *specs], cwd=folder, capture_output=True, text=True
    )


def _take_deb(deb: Path, pkg: dict, debs_dir: Path, pinned: bool) -> tuple[Path, dict]:
    """Verify a downloaded .deb against its pin and move it into debs_dir."""
    digest = sha256_file(deb)
    fetched = {**pkg, "sha256": digest, "deb_bytes": deb.stat().st_size}
    if pinned and digest != pkg["sha256"]:
        raise RecipeError(
            f"{deb.name} from apt has sha256 {digest}, but {RECIPES_PATH.name} pins "
            f"{pkg['sha256']}: the archive holds a different file under the same version; "
            f"find out why before changing the pin"
        )
    if not pinned:
        fetched["version"] = _deb_field(deb, "Version")
        fetched["architecture"] = _deb_field(deb, "Architecture")
    target = debs_dir / deb_filename(fetched)
    os.replace(deb, target)
    return target, fetched


def fetch_debs(
    pkgs: list[dict],
    debs_dir: Path,
    language: str,
    pinned: bool = True,
    say: Callable[[str], None] = lambda _m: None,
) -> list[tuple[Path, dict]]:
    """Each package's .deb in debs_dir, with the package as fetched (version, sha256, bytes).
    A pinned .deb already there with the pinned sha256 is used as it is; the others are
    downloaded with one `apt-get download` (one per package when that fails, to name the
    package at fault)."""
    debs_dir.mkdir(parents=True, exist_ok=True)
    found: dict[str, tuple[Path, dict]] = {}
    for pkg in pkgs:
        cached = _cached_deb(pkg, debs_dir, say) if pinned else None
        if cached is not None:
            found[pkg["name"]] = cached, {**pkg, "deb_bytes": cached.stat().st_size}
    missing = [pkg for pkg in pkgs if pkg["name"] not in found]
    if missing:
        say(f"apt-get download {' '.join(apt_spec(p, pinned) for p in missing)}")
    with tempfile.TemporaryDirectory(prefix=".download-", dir=debs_dir) as tmp:
        folder = Path(tmp)
        batch = [missing] if missing else []
        if (
            len(missing) > 1
            and _apt_download([apt_spec(p, pinned) for p in missing], folder).returncode
        ):
            batch = [[p] for p in missing]  # which one failed?
        for group in batch:
            if len(group) == 1 and not list(folder.glob(f"{group[0]['name']}_*.deb")):
                proc = _apt_download([apt_spec(group[0], pinned)], folder)
                if proc.returncode:
                    raise _download_error(
                        group[0], language, debs_dir, _apt_error(proc.stderr), pinned
                    )
            for pkg in group:
                debs = sorted(folder.glob(f"{pkg['name']}_*.deb"))
                if len(debs) != 1:
                    raise RecipeError(
                        f"apt-get download {apt_spec(pkg, pinned)} left {len(debs)} files; "
                        f"expected one .deb"
                    )
                found[pkg["name"]] = _take_deb(debs[0], pkg, debs_dir, pinned)
    return [found[pkg["name"]] for pkg in pkgs]


def _download_error(
    pkg: dict, language: str, debs_dir: Path, apt_error: str, pinned: bool
) -> RecipeError:
    name = pkg["name"]
    if not pinned:
        return RecipeError(
            f"apt-get download {name} failed ({apt_error}); run `apt-get update` and check "
            f"`apt-cache policy {name}`"
        )
    return RecipeError(
        f"cannot download {name} {pkg['version']} ({apt_error}). If `apt-get update` does not "
        f"help, the archive has moved on: `apt-cache policy {name}` lists what it has. Either "
        f"put the pinned {deb_filename(pkg)} (from https://snapshot.debian.org/binary/{name}/) "
        f"into {debs_dir}, or move the pins: `charcode corpus --language {language} "
        f"--any-version` builds from the current packages and prints the versions and sha256s "
        f"to put into {RECIPES_PATH}"
    )


# --- the corpus tree ---------------------------------------------------------------------


def listing_text(files: dict[str, str]) -> str:
    """`sha256sum` lines, sorted by path (bytewise)."""
    return "".join(
        f"{files[p]}  {p}\n"
        for p in sorted(files, key=lambda p: p.encode("utf-8", "surrogateescape"))
    )


def tree_summary(files: dict[str, str], total_bytes: int) -> dict:
    text = listing_text(files)
    return {
        "files": len(files),
        "bytes": total_bytes,
        "tree_sha256": hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest(),
    }


def hash_tree(folder: Path) -> tuple[dict[str, str], int]:
    """Every file under folder but the manifest and listing: path -> sha256, and the bytes."""
    files, total = {}, 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if rel in (MANIFEST_NAME, LISTING_NAME):
                continue
            files[rel] = sha256_file(path)
            total += path.lstat().st_size
    return files, total


def _fsync_write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _publish(tmp: Path, folder: Path) -> None:
    """Replace folder by tmp: the old tree is moved aside first, then removed."""
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.rename(folder, old)
    os.rename(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def build_language(
    language: str,
    dest: Path,
    debs_dir: Path | None = None,
    any_version: bool = False,
    doc: dict | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> dict:
    """Download, verify and extract one language's corpus into dest/<language>; returns the
    manifest (also written to dest/<language>/MANIFEST.json)."""
    recipe = get_recipe(language, doc)
    dest = Path(dest).expanduser().resolve()
    debs_dir = Path(debs_dir).expanduser().resolve() if debs_dir else dest / ".debs"
    folder = dest / language
    started = time.monotonic()

    fetched = fetch_debs(recipe["packages"], debs_dir, language, not any_version, say)

    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{language}.", suffix=".tmp", dir=dest))
    try:
        files: dict[str, str] = {}
        total, packages = 0, []
        for deb, info in fetched:
            t0 = time.monotonic()
            part = extract_package(deb, recipe, info, tmp / info["name"])
            files.update((f"{info['name']}/{p}", h) for p, h in part.files.items())
            total += part.bytes
            entry = {
                "name": info["name"],
                "version": info["version"],
                "architecture": info["architecture"],
                "sha256": info["sha256"],
                "deb_bytes": info["deb_bytes"],
                "files": len(part.files),
                "bytes": part.bytes,
                "skipped": dict(sorted(part.skipped.items())),
            }
            packages.append(entry)
            skipped = ", ".join(f"{k} {v}" for k, v in entry["skipped"].items())
            say(
                f"{info['name']} {info['version']}: {len(part.files):,} files, "
                f"{part.bytes / 1e6:.1f} MB{f' (skipped {skipped})' if skipped else ''} "
                f"[{time.monotonic() - t0:.0f} s]"
            )
        tree = tree_summary(files, total)
        expect = recipe.get("expect") or {}
        pinned = not any_version
        manifest = {
            "format": RECIPE_FORMAT,
            "language": language,
            "distribution": (doc or load_recipes()).get("distribution"),
            "pinned": pinned,
            "packages": packages,
            **tree,
            "matches_recipe": (expect == tree) if pinned and expect else None,
            "extensions": recipe["extensions"],
            "max_file_bytes": recipe["max_file_bytes"],
            "val_fraction": recipe["val_fraction"],
            "split": "charcode's own: by a sha256 of each file's path relative to this folder "
            "(training/corpus.py split_files), at val_fraction",
            "train_command": train_command(recipe, folder),
            "seconds": round(time.monotonic() - started, 1),
        }
        _fsync_write(tmp / LISTING_NAME, listing_text(files))
        _fsync_write(tmp / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
        _publish(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def check_language(language: str, dest: Path, doc: dict | None = None) -> dict:
    """Re-hash dest/<language> and compare it with the recipe's `expect`; returns the tree
    summary, raises RecipeError on any difference."""
    recipe = get_recipe(language, doc)
    folder = Path(dest).expanduser() / language
    if not (folder / MANIFEST_NAME).is_file():
        raise RecipeError(
            f"no {language} corpus in {folder}; build it with `charcode corpus --language {language}"
            f" --dest {Path(dest)}`"
        )
    files, total = hash_tree(folder)
    tree = tree_summary(files, total)
    expect = recipe.get("expect") or {}
    if not expect:
        raise RecipeError(f"the {language} recipe records no expected tree yet; nothing to check")
    if tree != expect:
        raise RecipeError(
            f"{folder} differs from the recipe: {_tree_difference(folder, files, tree, expect)}; "
            f"rebuild it with `charcode corpus --language {language} --dest {Path(dest)}`"
        )
    return tree


def _tree_difference(folder: Path, files: dict[str, str], tree: dict, expect: dict) -> str:
    """A short account of what differs, using the listing written at build time if any."""
    parts = [
        f"{k} {tree[k]} != {expect.get(k)}" for k in ("files", "bytes") if tree[k] != expect.get(k)
    ]
    try:
        listed = {}
        for line in (folder / LISTING_NAME).read_text("utf-8", "surrogateescape").splitlines():
            digest, _, path = line.partition("  ")
            listed[path] = digest
    except OSError:
        listed = {}
    if listed and tree_summary(listed, 0)["tree_sha256"] == expect.get("tree_sha256"):
        changed = sorted(p for p in files.keys() | listed.keys() if files.get(p) != listed.get(p))
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        parts.append(f"changed or added or missing: {', '.join(changed[:3])}{more}")
    if not parts:
        parts.append(f"tree sha256 {tree['tree_sha256']} != {expect.get('tree_sha256')}")
    return "; ".join(parts)


# --- command line ------------------------------------------------------------------------


def default_dest() -> Path:
    """$CHARCODE_SOURCES_DIR, else the user's cache folder for charcode, /sources."""
    env = os.environ.get("CHARCODE_SOURCES_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("charcode")) / "sources"


def add_corpus_subcommand(sub: Subcommands) -> None:
    """`charcode corpus`: rebuild (or check) a bundled model's corpus."""
    p = sub.add_parser(
        "corpus",
        help="rebuild a bundled model's training corpus from pinned Debian packages",
        description="Download the Debian packages pinned for a language (apt-get download), "
        "verify their sha256, extract the language's source files into DEST/LANGUAGE and "
        "print the `charcode train` command of the bundled model.",
    )
    p.add_argument("--language", "-l", required=True, help="c, python or lua")
    p.add_argument(
        "--dest",
        type=Path,
        help="folder of corpora (default: $CHARCODE_SOURCES_DIR or the user cache folder); "
        "keep it outside git repositories",
    )
    p.add_argument("--debs", type=Path, help="where .deb files are kept (default DEST/.debs)")
    p.add_argument(
        "--check",
        action="store_true",
        help="verify an existing DEST/LANGUAGE against the recipe; downloads nothing",
    )
    p.add_argument(
        "--any-version",
        action="store_true",
        help="take the versions apt has now instead of the pins (to move the pins)",
    )
    p.add_argument(
        "--show", action="store_true", help="print the recipe (packages, pins, train command)"
    )
    p.set_defaults(func=cmd_corpus)


def cmd_corpus(args) -> int:
    dest = (args.dest or default_dest()).expanduser()

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        doc = load_recipes()
        recipe = get_recipe(args.language, doc)
        if args.show:
            print(json.dumps(recipe, indent=1))
            print(f"train: {train_command(recipe, dest / args.language)}")
            return 0
        if args.check:
            tree = check_language(args.language, dest, doc)
            print(
                f"ok: {dest / args.language} matches the {args.language} recipe "
                f"({tree['files']:,} files, {tree['bytes']:,} bytes, tree sha256 {tree['tree_sha256']})"
            )
            return 0
        manifest = build_language(
            args.language, dest, args.debs, any_version=args.any_version, doc=doc, say=say
        )
    except RecipeError as e:
        raise CliError(str(e)) from None
    folder = dest.expanduser().resolve() / args.language
    print(
        f"{args.language}: {manifest['files']:,} files, {manifest['bytes']:,} bytes from "
        f"{len(manifest['packages'])} package(s) in {folder} [{manifest['seconds']:.0f} s]"
    )
    print(f"tree sha256 {manifest['tree_sha256']}")
    expect = recipe.get("expect") or {}
    tree = {k: manifest[k] for k in ("files", "bytes", "tree_sha256")}
    if args.any_version:
        pins = [
            {k: p[k] for k in ("name", "version", "architecture", "sha256")}
            for p in manifest["packages"]
        ]
        print("unpinned build; to move the pins, put these into " + str(RECIPES_PATH) + ":")
        print(json.dumps({"packages": pins, "expect": tree}, indent=1))
    elif not expect:
        print(f'the recipe records no tree yet; its "expect": {json.dumps(tree)}')
    elif expect != tree:
        raise CliError(
            f"the extracted corpus differs from the recipe's expect ({json.dumps(expect)}); "
            f"the packages matched their pins, so the extraction code has changed"
        )
    else:
        print("matches the recipe")
    print(f"train: {manifest['train_command']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m charcode.training.recipes corpus ...` (the same as `charcode corpus ...`)."""
    parser = argparse.ArgumentParser(prog="charcode")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_corpus_subcommand(sub)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
