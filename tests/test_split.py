"""The project-level train/validation split (issue 14): whole packages of a `charcode corpus`
folder, or whole --repo folders, are held out; one plain repository is split by file."""

from __future__ import annotations

import json
from argparse import Namespace

import numpy as np
import pytest

from charcode.training import recipes
from charcode.training.corpus import (
    build_corpus,
    choose_projects,
    collect_files,
    format_summary,
    split_files,
    split_rule,
    split_sources,
)
from charcode.training.symbols import BOUNDARY


@pytest.fixture(autouse=True)
def _no_enclosing_repo(tmp_path, monkeypatch):
    # Keep git from finding a repository above tmp_path, so the trees are walked.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


def _module(project: str, i: int) -> str:
    # distinct contents per file (the builder drops exact duplicates)
    return f"def {project.replace('-', '_')}_{i}(x):\n    return x * {i} + {len(project)}\n" * 3


def write_corpus(root, projects: dict[str, int], val_packages=None, manifest=True):
    """A corpus folder as `charcode corpus` writes it: root/<package>/..., MANIFEST.json."""
    for project, n in projects.items():
        for i in range(n):
            path = root / project / "usr" / "lib" / f"m{i}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_module(project, i))
    if manifest:
        doc = {"language": "python", "packages": [{"name": p} for p in projects]}
        if val_packages is not None:
            doc["split"] = {"by": "project", "val_packages": val_packages}
        (root / "MANIFEST.json").write_text(json.dumps(doc))
    return root


def _projects_of(files, is_val):
    val = {f.rel.split("/", 1)[0] for f, v in zip(files, is_val, strict=True) if v}
    train = {f.rel.split("/", 1)[0] for f, v in zip(files, is_val, strict=True) if not v}
    return val, train


def test_a_corpus_folder_holds_out_the_packages_its_manifest_names(tmp_path):
    root = write_corpus(tmp_path / "python", {"alpha": 5, "beta": 4, "gamma": 6}, ["beta"])
    files, _ = collect_files([root], "python")
    is_val, split = split_sources(files, [root], 0.1)
    val, train = _projects_of(files, is_val)
    assert val == {"beta"} and train == {"alpha", "gamma"}
    assert split["by"] == "project" and split["projects"] == "package"
    assert split["val_projects"] == ["beta"]
    # the held-out side does not depend on val_fraction: the recipe names the packages
    assert split_sources(files, [root], 0.5)[0] == is_val


def test_the_file_split_stays_available(tmp_path):
    root = write_corpus(tmp_path / "python", {"alpha": 10, "beta": 10}, ["beta"])
    files, _ = collect_files([root], "python")
    is_val, split = split_sources(files, [root], 0.3, split_by="file")
    assert split["by"] == "file"
    assert is_val == split_files([f.rel for f in files], 0.3)
    val, train = _projects_of(files, is_val)
    assert val & train  # files of one package on both sides: what the project split avoids


def test_a_manifest_without_a_list_chooses_packages_by_name_and_bytes(tmp_path):
    projects = {f"pkg{i}": 3 for i in range(12)}
    root = write_corpus(tmp_path / "lua", projects, val_packages=None)
    files, _ = collect_files([root], "python")
    is_val, split = split_sources(files, [root], 0.25)
    val, train = _projects_of(files, is_val)
    assert not val & train and val and train
    assert split["val_projects"] == sorted(val)
    # the choice depends on names and sizes only: another folder, the same packages
    other = write_corpus(tmp_path / "elsewhere", projects, val_packages=None)
    files2, _ = collect_files([other], "python")
    assert _projects_of(files2, split_sources(files2, [other], 0.25)[0]) == (val, train)


def test_choose_projects():
    sizes = {f"p{i}": 100 for i in range(20)}
    chosen = choose_projects(sizes, 0.2)
    assert len(chosen) == 4  # taken while below a fifth of the bytes
    assert chosen == choose_projects(dict(reversed(sizes.items())), 0.2)  # order-free
    assert choose_projects({"a": 1, "b": 1}, 0.99) in (["a"], ["b"])  # one side each
    assert choose_projects({"only": 5}, 0.5) == []  # something must train
    assert choose_projects(sizes, 0.0) == []
    # a project larger than the fraction still goes whole
    assert choose_projects({"big": 1000, "small": 1}, 0.1) in (["big"], ["small"])


def test_several_repos_hold_out_whole_repos(tmp_path):
    roots = []
    for name in ("app", "lib", "tool", "web", "cli", "db"):
        root = tmp_path / name
        for i in range(4):
            p = root / "src" / f"f{i}.py"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(_module(name, i))
        roots.append(root)
    files, _ = collect_files(roots, "python")
    is_val, split = split_sources(files, roots, 0.2)
    assert split["projects"] == "repository"
    by_root: dict[int, set[bool]] = {}
    for f, v in zip(files, is_val, strict=True):
        by_root.setdefault(f.root_index, set()).add(v)
    assert all(len(sides) == 1 for sides in by_root.values())  # no repo on both sides
    held = {roots[i].name for i, sides in by_root.items() if True in sides}
    assert held == set(split["val_projects"]) and 0 < len(held) < len(roots)


def test_a_corpus_of_one_package_is_split_by_file(tmp_path):
    root = write_corpus(tmp_path / "c", {"linux-source-6.12": 20}, val_packages=None)
    files, _ = collect_files([root], "python")
    is_val, split = split_sources(files, [root], 0.3)
    assert split["by"] == "file" and 0 < sum(is_val) < len(files)


def test_one_plain_repo_is_split_by_file(tmp_path):
    root = tmp_path / "repo"
    for i in range(30):
        p = root / "pkg" / f"m{i}.py"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(_module("repo", i))
    files, _ = collect_files([root], "python")
    is_val, split = split_sources(files, [root], 0.3)
    assert split["by"] == "file" and split["val_projects"] is None
    assert is_val == split_files([f.rel for f in files], 0.3)
    assert split_rule([root])["by"] == "file"


def test_unknown_split_is_a_one_line_error(tmp_path):
    from charcode.training.corpus import CorpusError

    with pytest.raises(CorpusError, match="--split-by project or file"):
        split_rule([tmp_path], "package")


def _docs(arr: np.ndarray) -> list[bytes]:
    out, cur = [], []
    for x in np.asarray(arr):
        if x == BOUNDARY:
            if cur:
                out.append(bytes(cur))
            cur = []
        else:
            cur.append(int(x))
    if cur:
        out.append(bytes(cur))
    return out


def test_build_corpus_trains_on_no_file_of_a_held_out_package(tmp_path):
    root = write_corpus(tmp_path / "python", {"alpha": 6, "beta": 3, "gamma": 5}, ["beta"])
    c = build_corpus([root], "python", cache_dir=tmp_path / "cache", val_fraction=0.1)
    val_docs, train_docs = _docs(c.val), _docs(c.train)
    assert len(val_docs) == 3 and len(train_docs) == 11
    assert all(b"beta_" in d for d in val_docs)
    assert not any(b"beta_" in d for d in train_docs)
    assert c.summary["split"]["val_projects"] == ["beta"]
    assert "held out: beta" in format_summary(c.summary)
    # the split rule is part of the cache key: the file split is another corpus
    f = build_corpus(
        [root], "python", cache_dir=tmp_path / "cache", val_fraction=0.1, split_by="file"
    )
    assert f.path != c.path and f.summary["split"]["by"] == "file"
    # and so is the list of held-out packages
    write_corpus(root, {}, None)
    (root / "MANIFEST.json").write_text(
        json.dumps({"packages": [], "split": {"by": "project", "val_packages": ["gamma"]}})
    )
    g = build_corpus([root], "python", cache_dir=tmp_path / "cache", val_fraction=0.1)
    assert g.path != c.path and g.summary["split"]["val_projects"] == ["gamma"]
    again = build_corpus([root], "python", cache_dir=tmp_path / "cache", val_fraction=0.1)
    assert again.path == g.path


def test_eval_split_val_uses_the_same_split(tmp_path):
    from charcode.server.cli_eval import find_eval_files

    root = write_corpus(tmp_path / "python", {"alpha": 4, "beta": 3, "gamma": 4}, ["gamma"])
    held = find_eval_files([root], "python", split="val", val_fraction=0.1)
    assert {p.relative_to(root).parts[0] for p in held} == {"gamma"}
    by_file = find_eval_files([root], "python", split="val", val_fraction=0.5, split_by="file")
    assert {p.relative_to(root).parts[0] for p in by_file} != {"gamma"} or len(by_file) != 4


def test_train_and_eval_accept_split_by():
    from charcode.training.cli import build_parser

    args = build_parser().parse_args(
        ["train", "--language", "go", "--repo", "x", "--steps", "1", "--split-by", "file"]
    )
    assert args.split_by == "file"
    args = build_parser().parse_args(["train", "--language", "go", "--repo", "x", "--steps", "1"])
    assert args.split_by == "project"
    assert isinstance(args, Namespace)


def test_charcode_corpus_records_the_held_out_packages(tmp_path, monkeypatch):
    """build_language writes the recipe's val_packages into MANIFEST.json, which the split
    reads, and the style mix into MANIFEST.json and SUMMARY.md (no download: a fake .deb)."""
    import io
    import tarfile

    def fake_fetch(pkgs, debs_dir, language, pinned=True, say=None):
        out = []
        for pkg in pkgs:
            out.append((tmp_path / f"{pkg['name']}.deb", {**pkg, "deb_bytes": 1}))
        return out

    def fake_extract(deb, recipe, pkg, out_dir):
        result = recipes.Extracted()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            body = (
                "int f(void)\n{\n\treturn 1;\n}\n"
                if pkg["name"] == "tabs"
                else "int f(void)\n{\n    if (x) {\n        return 1;\n    }\n}\n"
            ).encode()
            info = tarfile.TarInfo(f"src/{pkg['name']}.c")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        buf.seek(0)
        with tarfile.open(fileobj=buf, mode="r") as tar:
            sel = recipes.Selection.for_package(recipe, pkg)
            recipes.extract_members(tar, sel, out_dir, result)
        return result

    monkeypatch.setattr(recipes, "fetch_debs", fake_fetch)
    monkeypatch.setattr(recipes, "extract_package", fake_extract)
    pkg = {"version": "1", "architecture": "all", "sha256": "0" * 64}
    doc = {
        "format": recipes.RECIPE_FORMAT,
        "distribution": "test",
        "languages": {
            "c": {
                "extensions": [".c", ".h"],
                "max_file_bytes": 1000,
                "val_fraction": 0.1,
                "val_packages": ["spaces"],
                "packages": [{"name": "tabs", **pkg}, {"name": "spaces", **pkg}],
                "expect": {},
                "train": ["charcode train --language c --repo {corpus} --steps 1"],
            }
        },
    }
    manifest = recipes.build_language("c", tmp_path / "dest", doc=doc)
    folder = tmp_path / "dest" / "c"
    on_disk = json.loads((folder / "MANIFEST.json").read_text())
    assert on_disk["split"]["val_packages"] == ["spaces"] == manifest["split"]["val_packages"]
    styles = {p["dir"]: p["style"] for p in manifest["packages"]}
    assert styles["tabs"]["label"] == "tabs" and styles["tabs"]["tab_share"] == 1.0
    assert styles["spaces"]["label"] == "4 spaces"
    assert styles["spaces"]["space_width_share"]["4"] == 1.0
    assert manifest["style"]["tab_share"] == pytest.approx(1 / 4)
    summary = (folder / "SUMMARY.md").read_text()
    assert "| spaces |" in summary and "validation" in summary
    # the corpus builder reads that split
    files, _ = collect_files([folder], "c")
    is_val, split = split_sources(files, [folder], 0.1)
    assert split["val_projects"] == ["spaces"]
    assert [f.rel for f, v in zip(files, is_val, strict=True) if v] == ["spaces/src/spaces.c"]
    # and --check ignores the summary file
    doc["languages"]["c"]["expect"] = {k: manifest[k] for k in ("files", "bytes", "tree_sha256")}
    assert recipes.check_language("c", tmp_path / "dest", doc)["files"] == 2


@pytest.mark.parametrize(
    ("text", "step"),
    [
        ("a\n  b\n    c\n  d\n", "2"),
        ("a\n    b\n        c\n", "4"),
        ("a\n        b\n", "8"),
        ("a\n   b\n      c\n", "3"),
        ("/*\n * x\n */\nint y;\n", "other"),  # only the block comment's 1-space step
    ],
)
def test_indent_step(text, step):
    count = recipes.StyleCount()
    count.add_file(text.encode())
    assert count.width.most_common(1)[0][0] == step


def test_eval_takes_the_split_the_checkpoint_records():
    from types import SimpleNamespace

    from charcode.server.cli_eval import _split_by

    def model(corpus):
        return SimpleNamespace(meta={"training": {"corpus": corpus}})

    args = Namespace(split_by=None)
    assert _split_by(args, None) == "project"
    assert _split_by(args, model({"files": 3, "split": {"by": "project"}})) == "project"
    assert _split_by(args, model({"files": 3})) == "file"  # trained before the project split
    assert _split_by(Namespace(split_by="project"), model({"files": 3})) == "project"
