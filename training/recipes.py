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
SUMMARY_NAME = "SUMMARY.md"
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


def recipe_language(name: str, recipe: dict) -> str:
    """The language a recipe's corpus is for: its `language`, else its name (a recipe such as
    c-kernel, the shipped C model's corpus, keeps an older corpus of a language buildable)."""
    return recipe.get("language", name)


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


def is_source(pkg: dict) -> bool:
    """A Debian source package (`apt-get source`): its pinned files, and the upstream
    tarball read from them; otherwise a binary package (`apt-get download`)."""
    return "files" in pkg


def source_tarball(pkg: dict) -> str:
    """The file of a source package the sources are read from: `tarball` when the recipe
    names it, else the upstream tarball (NAME_VERSION.orig.tar.*), else (a native package)
    the one .tar.* that is not the Debian packaging."""
    if pkg.get("tarball"):
        return pkg["tarball"]
    names = sorted(pkg["files"])
    orig = [n for n in names if re.search(r"\.orig\.tar\.[a-z0-9]+\Z", n)]
    native = [n for n in names if ".tar." in n and ".debian.tar." not in n and ".orig-" not in n]
    found = orig or native
    if len(found) != 1:
        raise RecipeError(
            f"source package {pkg['name']}: cannot tell its upstream tarball among "
            f"{', '.join(names)}; name it in the recipe's `tarball`"
        )
    return found[0]


def package_dir(pkg: dict) -> str:
    """The package's folder in the corpus: DEST/<language>/<folder>/..."""
    return pkg.get("dir", pkg["name"])


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
            strip_components=int(pkg.get("strip_components", 1 if is_source(pkg) else 0))
            if pkg.get("tarball") or is_source(pkg)
            else 0,
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


def extract_source(folder: Path, recipe: dict, pkg: dict, out_dir: Path) -> Extracted:
    """A source package's selected files (from its upstream tarball), written under out_dir."""
    sel = Selection.for_package(recipe, pkg)
    result = Extracted()
    out_dir.mkdir(parents=True, exist_ok=True)
    tarball = folder / source_tarball(pkg)
    try:
        with tarfile.open(tarball, mode="r|*") as tar:
            extract_members(tar, sel, out_dir, result)
    except (OSError, tarfile.TarError) as e:
        raise RecipeError(f"cannot read {tarball}: {e}; delete it and run again") from None
    return result


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


SOURCES_LIST = (
    "# written by charcode corpus: Debian 12's sources, for apt-get source\n"
    "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian bookworm main\n"
    "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian bookworm-updates main\n"
    "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian-security bookworm-security main\n"
)


def _apt_source_options(apt_dir: Path) -> list[str]:
    """apt-get options for a private apt state in apt_dir whose only sources are bookworm's
    deb-src lines: the machine's own apt configuration is neither read nor changed."""
    return [
        "-o",
        f"Dir::Etc::SourceList={apt_dir / 'sources.list'}",
        "-o",
        "Dir::Etc::SourceParts=/nonexistent",
        "-o",
        f"Dir::State::Lists={apt_dir / 'lists'}",
        "-o",
        f"Dir::Cache={apt_dir / 'cache'}",
        "-o",
        "APT::Sandbox::User=" + ("root" if os.geteuid() == 0 else os.environ.get("USER", "root")),
    ]


def _apt_source_state(apt_dir: Path, say: Callable[[str], None]) -> list[str]:
    """The private apt state for source packages, updated once a day."""
    apt_get = _require("apt-get", "charcode corpus downloads Debian source packages with apt")
    for sub in ("lists/partial", "cache/archives/partial"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    sources = apt_dir / "sources.list"
    fresh = sources.is_file() and sources.read_text("utf-8") == SOURCES_LIST
    lists = list((apt_dir / "lists").glob("*_Sources*"))
    stale = not lists or time.time() - min(p.stat().st_mtime for p in lists) > 86400
    if not fresh or stale:
        sources.write_text(SOURCES_LIST, "utf-8")
        say(f"apt-get update (deb-src lines for bookworm, in {apt_dir})")
        proc = subprocess.run(
            [apt_get, "-q", *_apt_source_options(apt_dir), "update"], capture_output=True, text=True
        )
        if proc.returncode:
            raise RecipeError(
                f"apt-get update for the source lists failed: {_apt_error(proc.stderr)}"
            )
    return [apt_get, *_apt_source_options(apt_dir)]


def _cached_source(pkg: dict, folder: Path) -> bool:
    return all(
        (folder / name).is_file() and sha256_file(folder / name) == digest
        for name, digest in pkg["files"].items()
    )


def fetch_source(
    pkg: dict,
    sources_dir: Path,
    apt_dir: Path,
    language: str,
    pinned: bool = True,
    say: Callable[[str], None] = lambda _m: None,
) -> tuple[Path, dict]:
    """The folder holding a source package's files (sources_dir/NAME_VERSION), each checked
    against its pinned sha256, and the package as fetched. Downloaded with
    `apt-get source --download-only NAME=VERSION` (apt also checks them against the .dsc)."""
    version = pkg.get("version", "")
    folder = sources_dir / f"{pkg['name']}_{version.replace(':', '%3a')}"
    if pinned and folder.is_dir() and _cached_source(pkg, folder):
        return folder, {**pkg, "download_bytes": _bytes_in(folder, pkg["files"])}
    apt = _apt_source_state(apt_dir, say)
    spec = f"{pkg['name']}={version}" if pinned else pkg["name"]
    say(f"apt-get source --download-only {spec}")
    sources_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=sources_dir) as tmp:
        proc = subprocess.run(
            [*apt, "source", "--download-only", "-q", spec],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            raise RecipeError(
                f"apt-get source --download-only {spec} failed ({_apt_error(proc.stderr)}). The "
                f"archive may have moved on: put the pinned files (from "
                f"https://snapshot.debian.org/package/{pkg['name']}/) into {folder}, or move the "
                f"pins with `charcode corpus --language {language} --any-version`"
            )
        got = {p.name: sha256_file(p) for p in Path(tmp).iterdir() if p.is_file()}
        if not pinned:
            dscs = [n for n in got if n.endswith(".dsc")]
            if len(dscs) != 1:
                raise RecipeError(
                    f"apt-get source {spec} left {len(dscs)} .dsc files; expected one"
                )
            version = _dsc_version(Path(tmp) / dscs[0])
            folder = sources_dir / f"{pkg['name']}_{version.replace(':', '%3a')}"
        elif got != pkg["files"]:
            diff = sorted(
                n for n in got.keys() | pkg["files"].keys() if got.get(n) != pkg["files"].get(n)
            )
            raise RecipeError(
                f"apt-get source {spec} gave files that differ from the pins in {RECIPES_PATH.name} "
                f"({', '.join(diff)}): the archive holds different files under the same version; "
                f"find out why before changing the pins"
            )
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(tmp, folder)
        os.mkdir(tmp)  # for TemporaryDirectory's cleanup
    fetched = {**pkg, "version": version, "files": dict(sorted(got.items()))}
    return folder, {**fetched, "download_bytes": _bytes_in(folder, fetched["files"])}


def _bytes_in(folder: Path, names) -> int:
    return sum((folder / n).stat().st_size for n in names)


def _dsc_version(dsc: Path) -> str:
    for line in dsc.read_text("utf-8", "replace").splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise RecipeError(f"{dsc} has no Version field")


# --- style ---------------------------------------------------------------------------------

SPACE_WIDTHS = ("2", "3", "4", "8")


@dataclass
class StyleCount:
    """Indented lines by what they are indented with, and space-indented lines by the indent
    step of their file (2, 3, 4, 8 or other)."""

    lines: int = 0  # lines with any non-blank character
    tab: int = 0  # indented, starting with a tab
    space: int = 0  # indented, starting with a space
    width: Counter = field(default_factory=Counter)  # space-indented lines by the file's step

    def add_file(self, data: bytes) -> None:
        depths, tabs = [], 0
        for line in data.split(b"\n"):
            body = line.lstrip(b" \t")
            if not body.strip():
                continue
            self.lines += 1
            indent = len(line) - len(body)
            if not indent:
                depths.append(0)
            elif line[0] == 0x09:
                tabs += 1
            else:
                depths.append(indent)
        spaced = sum(1 for d in depths if d)
        self.tab += tabs
        self.space += spaced
        if spaced:
            self.width[indent_step(depths)] += spaced

    def add(self, other: StyleCount) -> None:
        self.lines += other.lines
        self.tab += other.tab
        self.space += other.space
        self.width.update(other.width)

    def to_dict(self) -> dict:
        indented = self.tab + self.space

        def share(n: int, d: int) -> float:
            return round(n / d, 4) if d else 0.0

        return {
            "lines": self.lines,
            "indented_lines": indented,
            "tab_share": share(self.tab, indented),
            "space_share": share(self.space, indented),
            "space_width_share": {
                w: share(self.width[w], self.space) for w in (*SPACE_WIDTHS, "other")
            },
            "label": self.label(),
        }

    def label(self) -> str:
        """The dominant style: "tabs", "4 spaces", ... (or "mixed" when none has 70%)."""
        indented = self.tab + self.space
        if not indented:
            return "none"
        if self.tab >= 0.7 * indented:
            return "tabs"
        if self.space >= 0.7 * indented and self.width:
            width, n = self.width.most_common(1)[0]
            if n >= 0.7 * self.space:
                return f"{width} spaces" if width != "other" else "spaces (other)"
        return "mixed"


def indent_step(depths: list[int]) -> str:
    """A file's indent step from the depths (in spaces) of its lines in order: the most common
    increase from one line to the next, counting increases of 2 to 8 (1 is mostly the ` * `
    of a block comment, and is used only when there is no other)."""
    steps = Counter(b - a for a, b in zip(depths, depths[1:], strict=False) if b > a)
    ranked = [s for s, _ in steps.most_common()]
    common = [s for s in ranked if 2 <= s <= 8] or ranked
    step = common[0] if common else min((d for d in depths if d), default=0)
    return str(step) if str(step) in SPACE_WIDTHS else "other"


def style_of_files(folder: Path, paths) -> StyleCount:
    count = StyleCount()
    for rel in paths:
        count.add_file((folder / rel).read_bytes())
    return count


def format_style(style: dict) -> str:
    widths = ", ".join(
        f"{w}: {style['space_width_share'][w]:.0%}" for w in (*SPACE_WIDTHS, "other")
    )
    return (
        f"tabs {style['tab_share']:.0%}, spaces {style['space_share']:.0%} of "
        f"{style['indented_lines']:,} indented lines (space-indented lines by their file's "
        f"step: {widths})"
    )


def summary_text(manifest: dict) -> str:
    """SUMMARY.md of a corpus: packages, versions, hashes, bytes, style and the split."""
    held = set((manifest.get("split") or {}).get("val_packages") or [])
    lines = [
        f"# {manifest['language']} corpus",
        "",
        f"{manifest['files']:,} files, {manifest['bytes']:,} bytes from "
        f"{len(manifest['packages'])} Debian 12 packages; tree sha256 {manifest['tree_sha256']}.",
        "",
        f"Style: {format_style(manifest['style'])}.",
        "",
        "Held out for validation (whole packages): " + (", ".join(sorted(held)) or "none") + ".",
        "",
        "| package | version | kind | sha256 | files | bytes | style | tabs | spaces | split |",
        "|---|---|---|---|---:|---:|---|---:|---:|---|",
    ]
    for p in manifest["packages"]:
        st = p["style"]
        digest = p.get("sha256") or p.get("files_sha256", {}).get(p.get("tarball", ""), "")
        lines.append(
            f"| {p['dir']} | {p['version']} | {p['kind']} | {digest[:16]} | {p['files']:,} | "
            f"{p['bytes']:,} | {st['label']} | {st['tab_share']:.0%} | {st['space_share']:.0%} | "
            f"{'validation' if p['dir'] in held else 'train'} |"
        )
    return "\n".join(lines) + "\n"


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
            if rel in (MANIFEST_NAME, LISTING_NAME, SUMMARY_NAME):
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


def val_packages(recipe: dict) -> list[str]:
    """The package folders a recipe holds out for validation (none for a recipe that predates
    the project split: charcode train then chooses packages by a hash of their names)."""
    return sorted(recipe.get("val_packages", []))


def build_language(
    language: str,
    dest: Path,
    debs_dir: Path | None = None,
    any_version: bool = False,
    doc: dict | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> dict:
    """Download, verify and extract one language's corpus into dest/<language>; returns the
    manifest (also written to dest/<language>/MANIFEST.json, with SUMMARY.md beside it)."""
    doc = load_recipes() if doc is None else doc
    recipe = get_recipe(language, doc)
    dest = Path(dest).expanduser().resolve()
    debs_dir = Path(debs_dir).expanduser().resolve() if debs_dir else dest / ".debs"
    sources_dir, apt_dir = dest / ".sources", dest / ".apt"
    folder = dest / language
    started = time.monotonic()
    pinned = not any_version
    names = [package_dir(p) for p in recipe["packages"]]
    if len(names) != len(set(names)):
        raise RecipeError(f"the {language} recipe names a package folder twice")
    missing_val = sorted(set(val_packages(recipe)) - set(names))
    if missing_val:
        raise RecipeError(f"the {language} recipe holds out {missing_val}, which it does not list")

    binaries = [p for p in recipe["packages"] if not is_source(p)]
    fetched_debs = dict(
        zip(
            [p["name"] for p in binaries],
            fetch_debs(binaries, debs_dir, language, pinned, say) if binaries else [],
            strict=True,
        )
    )

    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{language}.", suffix=".tmp", dir=dest))
    try:
        files: dict[str, str] = {}
        total, packages, style = 0, [], StyleCount()
        for pkg in recipe["packages"]:
            t0 = time.monotonic()
            where = package_dir(pkg)
            if is_source(pkg):
                src, info = fetch_source(pkg, sources_dir, apt_dir, language, pinned, say)
                part = extract_source(src, recipe, info, tmp / where)
                entry = {
                    "name": info["name"],
                    "dir": where,
                    "kind": "source",
                    "version": info["version"],
                    "tarball": source_tarball(info),
                    "files_sha256": info["files"],
                    "download_bytes": info["download_bytes"],
                }
            else:
                deb, info = fetched_debs[pkg["name"]]
                part = extract_package(deb, recipe, info, tmp / where)
                entry = {
                    "name": info["name"],
                    "dir": where,
                    "kind": "binary",
                    "version": info["version"],
                    "architecture": info["architecture"],
                    "sha256": info["sha256"],
                    "deb_bytes": info["deb_bytes"],
                }
            files.update((f"{where}/{p}", h) for p, h in part.files.items())
            total += part.bytes
            pstyle = style_of_files(tmp / where, part.files)
            style.add(pstyle)
            entry.update(
                files=len(part.files),
                bytes=part.bytes,
                skipped=dict(sorted(part.skipped.items())),
                style=pstyle.to_dict(),
            )
            packages.append(entry)
            skipped = ", ".join(f"{k} {v}" for k, v in entry["skipped"].items())
            say(
                f"{where} {info['version']}: {len(part.files):,} files, "
                f"{part.bytes / 1e6:.1f} MB, {pstyle.label()}"
                f"{f' (skipped {skipped})' if skipped else ''} [{time.monotonic() - t0:.0f} s]"
            )
        tree = tree_summary(files, total)
        expect = recipe.get("expect") or {}
        held = val_packages(recipe)
        manifest = {
            "format": RECIPE_FORMAT,
            "language": recipe_language(language, recipe),
            "recipe": language,
            "distribution": doc.get("distribution"),
            "pinned": pinned,
            "packages": packages,
            **tree,
            "matches_recipe": (expect == tree) if pinned and expect else None,
            "extensions": recipe["extensions"],
            "max_file_bytes": recipe["max_file_bytes"],
            "val_fraction": recipe["val_fraction"],
            "style": style.to_dict(),
            "train_command": train_command(recipe, folder),
            "seconds": round(time.monotonic() - started, 1),
        }
        if held:
            manifest["split"] = {
                "by": "project",
                "val_packages": held,
                "val_bytes": sum(p["bytes"] for p in packages if p["dir"] in held),
                "about": "whole packages held out: charcode train --repo on this folder "
                "(--split-by project, the default) validates on these packages' files only "
                "and trains on the others' (training/corpus.py split_sources)",
            }
        else:
            manifest["split"] = {
                "about": "the recipe names no held-out packages: charcode train --split-by "
                "project chooses packages by a sha256 of their names at val_fraction of the "
                "bytes; --split-by file holds out files by a sha256 of their paths relative "
                "to this folder (training/corpus.py split_sources)",
            }
        _fsync_write(tmp / LISTING_NAME, listing_text(files))
        _fsync_write(tmp / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
        _fsync_write(tmp / SUMMARY_NAME, summary_text(manifest))
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
    p.add_argument(
        "--language",
        "-l",
        required=True,
        help="a language with a recipe, or a recipe's name (c-kernel: the shipped C model's "
        "corpus); the corpus goes to DEST/NAME",
    )
    p.add_argument(
        "--dest",
        type=Path,
        help="folder of corpora (default: $CHARCODE_SOURCES_DIR or the user cache folder); "
        "keep it outside git repositories",
    )
    p.add_argument(
        "--debs",
        type=Path,
        help="where .deb files are kept (default DEST/.debs; source packages: DEST/.sources)",
    )
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
    print(f"style: {format_style(manifest['style'])}")
    for p in manifest["packages"]:
        st = p["style"]
        print(
            f"  {p['dir']:<40} {p['version']:<28} {p['files']:>6,} files {p['bytes']:>12,} bytes"
            f"  {st['label']:<10} tabs {st['tab_share']:>4.0%}"
        )
    held = (manifest.get("split") or {}).get("val_packages")
    if held:
        print(
            f"held out for validation: {', '.join(held)} ({manifest['split']['val_bytes']:,} bytes)"
        )
    print(f"summary: {folder / SUMMARY_NAME}")
    expect = recipe.get("expect") or {}
    tree = {k: manifest[k] for k in ("files", "bytes", "tree_sha256")}
    if args.any_version:
        pins = [
            {"name": p["name"], "version": p["version"], "files": p["files_sha256"]}
            if p["kind"] == "source"
            else {k: p[k] for k in ("name", "version", "architecture", "sha256")}
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
