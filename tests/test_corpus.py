"""Corpus building: file listing, skip reasons, split, encoding and the on-disk cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from charcode.training import corpus
from charcode.training.corpus import (
    CorpusError,
    build_corpus,
    collect_files,
    format_summary,
    is_ignored,
    parse_gitignore,
    split_files,
)
from charcode.training.symbols import BOUNDARY

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def _no_enclosing_repo(tmp_path, monkeypatch):
    # Keep git from finding a repository above tmp_path, so non-git fixtures are walked.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


def write(root, rel, content: str | bytes = "x = 1\n"):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def rels(files):
    return [f.rel for f in files]


def documents(array) -> list[bytes]:
    """The documents of an encoded array, checking that it starts with a boundary."""
    data = np.asarray(array)
    if len(data) == 0:
        return []
    assert data[0] == BOUNDARY
    starts = [*np.flatnonzero(data == BOUNDARY), len(data)]
    return [
        data[a + 1 : b].astype(np.uint8).tobytes() for a, b in zip(starts, starts[1:], strict=False)
    ]


# --- listing ---------------------------------------------------------------------------


@needs_git
def test_git_repo_lists_tracked_and_untracked_but_not_ignored(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo, ".gitignore", "ignored.py\nout_dir/\n")
    write(repo, "tracked.py", "a = 1\n")
    write(repo, "pkg/mod.py", "b = 2\n")
    git(repo, "add", ".gitignore", "tracked.py", "pkg/mod.py")
    write(repo, "untracked.py", "c = 3\n")
    write(repo, "ignored.py", "d = 4\n")
    write(repo, "out_dir/gen.py", "e = 5\n")
    write(repo, "notes.txt", "not python\n")

    files, skipped = collect_files([repo], "python")
    assert rels(files) == ["pkg/mod.py", "tracked.py", "untracked.py"]
    assert not skipped
    # A folder inside a repository is listed by git too, relative to that folder.
    files, _ = collect_files([repo / "pkg"], "python")
    assert rels(files) == ["mod.py"]
    # An ignored folder asked for by name is walked instead of coming out empty.
    files, _ = collect_files([repo / "out_dir"], "python")
    assert rels(files) == ["gen.py"]


def test_walk_honours_nested_gitignore_and_negation(tmp_path):
    write(tmp_path, ".gitignore", "/top_only.py\nsecret/\n**/gen_*.py\n!gen_keep.py\n# comment\n")
    write(tmp_path, "top_only.py", "1\n")  # anchored: ignored here only
    write(tmp_path, "sub/top_only.py", "2\n")
    write(tmp_path, "secret/x.py", "3\n")
    write(tmp_path, "a/b/gen_x.py", "4\n")
    write(tmp_path, "a/gen_keep.py", "5\n")
    write(tmp_path, "sub/.gitignore", "local.py\ndeep/*.py\n!deep/keep.py\n")
    write(tmp_path, "sub/local.py", "6\n")
    write(tmp_path, "local.py", "7\n")  # the nested rule applies under sub/ only
    write(tmp_path, "sub/deep/drop.py", "8\n")
    write(tmp_path, "sub/deep/keep.py", "9\n")

    files, skipped = collect_files([tmp_path], "python")
    assert rels(files) == ["a/gen_keep.py", "local.py", "sub/deep/keep.py", "sub/top_only.py"]
    assert not skipped


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "ignored"),
    [
        ("*.py", "a/b/c.py", False, True),
        ("build/", "x/build", True, True),
        ("build/", "x/build", False, False),  # directory-only
        ("/x.py", "x.py", False, True),
        ("/x.py", "sub/x.py", False, False),  # anchored
        ("doc/*.py", "doc/a.py", False, True),
        ("doc/*.py", "doc/sub/a.py", False, False),  # * does not cross folders
        ("a/**/b.py", "a/b.py", False, True),
        ("a/**/b.py", "a/x/y/b.py", False, True),
        ("**/b.py", "x/y/b.py", False, True),
        ("abc/**", "abc/d/e.py", False, True),
        ("abc/**", "abc", True, False),  # the folder itself stays, so negations inside work
        ("\\#x.py", "#x.py", False, True),
        ("# comment", "# comment", False, False),
        ("f[0-9].py", "f1.py", False, True),
        ("*.py\n!keep.py", "keep.py", False, False),
        ("trailing.py   ", "trailing.py", False, True),
    ],
)
def test_gitignore_patterns(pattern, path, is_dir, ignored):
    assert is_ignored(parse_gitignore(pattern), path, is_dir) is ignored


def test_nested_gitignore_rules_are_relative_to_their_folder():
    rules = parse_gitignore("*.log\n") + parse_gitignore("/only_here.py\n", base="sub")
    assert is_ignored(rules, "sub/only_here.py", False)
    assert not is_ignored(rules, "sub/x/only_here.py", False)
    assert is_ignored(rules, "sub/x/a.log", False)


# --- skip reasons ----------------------------------------------------------------------


def test_each_skip_reason_is_counted(tmp_path):
    good = "def f():\n    return 1\n"
    write(tmp_path, "good.py", good)
    write(tmp_path, "copy.py", good)  # duplicate: the first in path order is kept
    write(tmp_path, "node_modules/x.py")
    write(tmp_path, "vendor/y.py")
    write(tmp_path, "bin.py", b"x = 1\0\1\2")
    write(tmp_path, "latin1.py", b"s = '\xe9'\n")
    write(tmp_path, "lib.min.py", "x = 2\n")
    write(tmp_path, "long.py", "x = [" + "1, " * 400 + "]\n")
    write(tmp_path, "pb.py", "# Code generated by protoc. DO NOT EDIT.\nx = 3\n")
    write(tmp_path, "big.py", "y = 1\n" * 500)
    write(tmp_path, "empty.py", "")
    write(tmp_path, "README.md", "not python")  # another language: not counted at all
    os.symlink(tmp_path / "good.py", tmp_path / "link.py")
    os.symlink(tmp_path, tmp_path / "loop")  # a symlinked folder is not entered

    files, skipped = collect_files([tmp_path], "python", max_file_bytes=2000)
    assert rels(files) == ["copy.py"]
    assert files[0].sha256 == hashlib.sha256(good.encode()).hexdigest()
    assert skipped == {
        "vendored": 2,
        "binary": 1,
        "invalid_utf8": 1,
        "minified": 2,
        "generated": 1,
        "too_large": 1,
        "empty": 1,
        "duplicate": 1,
        "symlink": 1,
    }


def test_duplicates_across_roots_keep_the_first_root(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "z.py", "same = 1\n")
    write(b, "a.py", "same = 1\n")
    write(b, "other.py", "other = 2\n")
    files, skipped = collect_files([a, b], "python")
    assert [(f.root_index, f.rel) for f in files] == [(0, "z.py"), (1, "other.py")]
    assert skipped == {"duplicate": 1}


# --- errors ----------------------------------------------------------------------------


def test_errors_say_what_to_do(tmp_path):
    with pytest.raises(CorpusError, match=r"repository path .*nope does not exist; check --repo"):
        collect_files([tmp_path / "nope"], "python")
    write(tmp_path, "a.c", "int x;\n")
    with pytest.raises(
        CorpusError, match=r"^no \.py or \.pyi files found under .*; check --language or --repo$"
    ):
        build_corpus([tmp_path], "python", cache_dir=tmp_path / "cache")
    write(tmp_path, "node_modules/a.py")
    write(tmp_path, "b.py", b"\0")
    with pytest.raises(
        CorpusError, match=r"all 2 \.py or \.pyi files .* skipped \(binary: 1, vendored: 1\)"
    ):
        build_corpus([tmp_path], "python", cache_dir=tmp_path / "cache")
    with pytest.raises(CorpusError, match="unknown language 'cobol'"):
        collect_files([tmp_path], "cobol")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


# --- split -----------------------------------------------------------------------------


def test_split_depends_on_the_path_only():
    paths = [f"src/m{i}.py" for i in range(60)]
    split = split_files(paths, 0.5)
    assert 10 < sum(split) < 50
    # Adding files never moves an existing one (away from the at-least-one guarantee).
    more = split_files(paths + [f"new/n{i}.py" for i in range(40)], 0.5)
    assert more[:60] == split
    assert split == split_files(list(paths), 0.5)


def test_split_guarantees_one_file_per_side():
    paths = [f"f{i}.py" for i in range(5)]
    assert sum(split_files(paths, 0.0)) == 1
    assert sum(split_files(paths, 0.999)) == 4
    assert split_files(["only.py"], 0.999) == [False]  # a single file trains
    assert split_files([], 0.05) == []


# --- encoding and cache ----------------------------------------------------------------


@pytest.fixture
def small_repo(tmp_path):
    root = tmp_path / "repo"
    for i in range(6):
        write(root, f"pkg/m{i}.py", f"def f{i}():\n    return {i}\n")
    write(root, "uni.py", "# 中文 and emoji 🐍\r\nname = 'naïve'\n")
    return root


def test_documents_start_with_boundaries_and_round_trip(small_repo, tmp_path):
    c = build_corpus([small_repo], "python", cache_dir=tmp_path / "cache", val_fraction=0.3)
    s = c.summary
    assert c.train.dtype == np.uint16 and isinstance(c.train, np.memmap)
    assert s["files"] == 7 == s["train_files"] + s["val_files"]
    assert s["train_files"] >= 1 and s["val_files"] >= 1
    train, val = documents(c.train), documents(c.val)
    assert len(train) == s["train_files"] and len(val) == s["val_files"]
    assert (
        sum(map(len, train)) == s["train_bytes"] and s["bytes"] == s["train_bytes"] + s["val_bytes"]
    )
    # Every file is there byte for byte, on its side, in (root, path) order.
    ordered = sorted(p.relative_to(small_repo).as_posix() for p in small_repo.rglob("*.py"))
    contents = [(small_repo / rel).read_bytes() for rel in ordered]
    is_val = split_files(ordered, 0.3)
    assert train == [d for d, v in zip(contents, is_val, strict=True) if not v]
    assert val == [d for d, v in zip(contents, is_val, strict=True) if v]
    assert s["sha256"] == hashlib.sha256(b"".join(contents)).hexdigest()
    assert s["language"] == "python" and s["extensions"] == [".py", ".pyi"]
    assert s["roots"] == [str(small_repo.resolve())]
    json.dumps(s)


def test_non_ascii_file_round_trips_exactly(tmp_path):
    text = "def 你好():\n    return '🐍🎉 ünïcödé'  # 注释\n"
    write(tmp_path / "r", "a.py", text)
    c = build_corpus([tmp_path / "r"], "python", cache_dir=tmp_path / "cache")
    assert documents(c.train) == [text.encode("utf-8")]
    assert len(c.val) == 0 and c.summary["val_files"] == 0


def test_builds_are_deterministic(small_repo, tmp_path):
    a = build_corpus([small_repo], "python", cache_dir=tmp_path / "c1", val_fraction=0.3)
    b = build_corpus([small_repo], "python", cache_dir=tmp_path / "c2", val_fraction=0.3)
    assert a.path.name == b.path.name
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)
    assert a.summary == b.summary


def test_cache_is_reused_without_reading_files(small_repo, tmp_path, monkeypatch):
    first = build_corpus([small_repo], "python", cache_dir=tmp_path / "cache")

    def no_reading(path, limit):
        raise AssertionError(f"read {path} again")

    with monkeypatch.context() as m:
        m.setattr(corpus, "_read", no_reading)
        again = build_corpus([small_repo], "python", cache_dir=tmp_path / "cache")
    assert again.path == first.path and np.array_equal(again.train, first.train)

    # A changed file, or different settings, make a new corpus.
    write(small_repo, "pkg/m0.py", "def f0():\n    return 'changed'\n")
    changed = build_corpus([small_repo], "python", cache_dir=tmp_path / "cache")
    assert changed.path != first.path and changed.summary["sha256"] != first.summary["sha256"]
    other = build_corpus([small_repo], "python", cache_dir=tmp_path / "cache", val_fraction=0.5)
    assert other.path != changed.path


def test_incomplete_or_failed_builds_are_never_trusted(small_repo, tmp_path, monkeypatch):
    cache = tmp_path / "cache"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the build were interrupted mid-way

    with monkeypatch.context() as m:
        m.setattr(corpus, "encode_array", killed)
        with pytest.raises(KeyboardInterrupt):
            build_corpus([small_repo], "python", cache_dir=cache)
    assert list(cache.iterdir()) == []  # the temporary folder is gone, nothing was published

    good = build_corpus([small_repo], "python", cache_dir=cache)
    (good.path / "summary.json").unlink()  # as if the summary had never been written
    calls = []
    real_read = corpus._read
    monkeypatch.setattr(corpus, "_read", lambda p, n: calls.append(p) or real_read(p, n))
    rebuilt = build_corpus([small_repo], "python", cache_dir=cache)
    assert calls and rebuilt.path == good.path and (rebuilt.path / "summary.json").exists()


def test_cache_dir_from_environment(small_repo, tmp_path, monkeypatch):
    monkeypatch.setenv("CHARCODE_CACHE_DIR", str(tmp_path / "env_cache"))
    messages = []
    c = build_corpus([small_repo], "python", progress=messages.append)
    assert c.path.parent == tmp_path / "env_cache"
    assert messages and "kept 7 files" in messages[-1]


def test_format_summary_lists_kept_and_skipped(small_repo, tmp_path):
    write(small_repo, "vendor/v.py")
    write(small_repo, "dup.py", (small_repo / "uni.py").read_bytes())
    c = build_corpus([small_repo], "python", cache_dir=tmp_path / "cache")
    text = format_summary(c.summary)
    assert "python: kept 7 files" in text
    assert "skipped 2 files: duplicate 1, vendored 1" in text
    assert c.summary["sha256"] in text
