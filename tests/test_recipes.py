"""The corpus recipes of the bundled models and the baselines bench: no network, no apt."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import math
import random
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from charcode.training import recipes
from charcode.training.languages import get_language

ROOT = Path(__file__).resolve().parents[1]


def _load_baselines():
    spec = importlib.util.spec_from_file_location("baselines", ROOT / "bench" / "baselines.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["baselines"] = module
    spec.loader.exec_module(module)
    return module


baselines = _load_baselines()
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


# --- the recipe data -----------------------------------------------------------------------


def test_recipes_are_well_formed():
    doc = recipes.load_recipes()
    assert {"c", "c-kernel", "python", "lua"} <= set(doc["languages"])
    for name, recipe in doc["languages"].items():
        language = recipes.recipe_language(name, recipe)
        assert tuple(recipe["extensions"]) == get_language(language).extensions
        assert recipe["max_file_bytes"] == 1_000_000
        assert 0 < recipe["val_fraction"] < 0.5
        names = [recipes.package_dir(p) for p in recipe["packages"]]
        assert len(names) == len(set(names)), f"{language}: a package twice"
        for pkg in recipe["packages"]:
            assert re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", pkg["name"])
            assert re.fullmatch(r"(\d+:)?[0-9][A-Za-z0-9.+~-]*", pkg["version"]), pkg
            if recipes.is_source(pkg):
                assert any(n.endswith(".dsc") for n in pkg["files"]), pkg["name"]
                for name, digest in pkg["files"].items():
                    assert name.startswith(f"{pkg['name']}_"), name
                    assert re.fullmatch(r"[0-9a-f]{64}", digest), name
                assert recipes.source_tarball(pkg) in pkg["files"]
            else:
                assert pkg["architecture"] in ("all", "amd64")
                assert re.fullmatch(r"[0-9a-f]{64}", pkg["sha256"]), pkg["name"]
                if "tarball" in pkg:
                    assert pkg["tarball"].startswith("usr/src/")
            for glob in pkg.get("include", []) + pkg.get("exclude", []):
                recipes._glob_regex(glob)  # compiles
        held = recipes.val_packages(recipe)
        assert set(held) <= set(names), f"{language}: holds out a package it does not list"
        if name not in ("c-kernel", "python", "lua"):
            # new recipes hold out whole packages: at least three, not all
            assert 3 <= len(held) < len(names) - 1, language
        expect = recipe["expect"]
        if expect:
            assert set(expect) == {"files", "bytes", "tree_sha256"}
            assert re.fullmatch(r"[0-9a-f]{64}", expect["tree_sha256"])
            assert 10_000_000 < expect["bytes"] < 100_000_000
        # the train commands are charcode train commands on the corpus, with the same split;
        # each later stage fine-tunes the one before it
        from charcode.training.cli import build_parser

        stages = recipes.train_commands(recipe, "/x/y")
        outputs = []
        for command in stages:
            argv = shlex.split(command)
            assert argv[:2] == ["charcode", "train"]
            assert argv[argv.index("--language") + 1] == language
            assert argv[argv.index("--repo") + 1] == "/x/y"
            assert float(argv[argv.index("--val-fraction") + 1]) == recipe["val_fraction"]
            # the shipped models were trained on the file split; the new ones hold out packages
            split_by = argv[argv.index("--split-by") + 1] if "--split-by" in argv else "project"
            shipped = name in (
                "c-kernel",
                "python",
                "lua",
            )  # pinned to reproduce the shipped models
            assert split_by == ("file" if shipped else "project")
            if outputs:
                assert argv[argv.index("--init-from") + 1] == outputs[-1]
            outputs.append(argv[argv.index("--output") + 1])
            build_parser().parse_args(argv[1:])  # charcode accepts it
        assert outputs[-1] == f"{language}.safetensors"
        assert recipes.train_command(recipe, "/x/y") == " && ".join(stages)


def test_the_kernel_recipe_leaves_out_generated_register_headers():
    (pkg,) = recipes.get_recipe("c-kernel")["packages"]
    assert pkg["tarball"] == "usr/src/linux-source-6.12.tar.xz"
    assert "drivers/gpu/drm/amd/include/asic_reg/**" in pkg["exclude"]


def test_unknown_language_is_a_one_line_error():
    with pytest.raises(recipes.RecipeError, match="recipes exist for c, .*lua, python"):
        recipes.get_recipe("cobol")


def test_deb_names_and_apt_specs():
    pkg = {"name": "luakit", "version": "1:2.3.3-1", "architecture": "amd64", "sha256": "0"}
    assert recipes.deb_filename(pkg) == "luakit_1%3a2.3.3-1_amd64.deb"
    assert recipes.apt_spec(pkg) == "luakit:amd64=1:2.3.3-1"
    assert recipes.apt_spec({**pkg, "architecture": "all"}) == "luakit=1:2.3.3-1"
    assert recipes.apt_spec(pkg, pinned=False) == "luakit:amd64"


# --- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("kernel/sched/core.c", "kernel/**", True),
        ("kernel.c", "kernel/**", False),
        ("fs/namei.c", "fs/*", True),
        ("fs/ext4/inode.c", "fs/*", False),
        ("usr/lib/python3.11/test/test_os.py", "**/test/**", True),
        ("test/x.py", "**/test/**", True),
        ("usr/lib/python3.11/unittest/mock.py", "**/test/**", False),
        ("usr/lib/python3.11/contest/x.py", "**/test/**", False),
        (
            "drivers/gpu/drm/amd/include/asic_reg/gc/gc_9_0.h",
            "drivers/gpu/drm/amd/include/asic_reg/**",
            True,
        ),
        ("a/b.c", "a/?.c", True),
    ],
)
def test_glob_match(path, pattern, expected):
    assert recipes.glob_match(path, pattern) is expected


def _member(name, size=10, kind=tarfile.REGTYPE):
    m = tarfile.TarInfo(name)
    m.size, m.type = size, kind
    return m


def test_member_selection():
    sel = recipes.Selection(
        extensions=(".py",),
        max_file_bytes=100,
        include=("usr/**",),
        exclude=("**/tests/**",),
    )

    def reason(m):
        return recipes.skip_reason(m, sel)

    assert reason(_member("./usr/lib/a.py")) == ("usr/lib/a.py", None)
    assert reason(_member("./usr/lib/a.txt")) == ("usr/lib/a.txt", "")
    assert reason(_member("./etc/a.py")) == ("etc/a.py", "")
    assert reason(_member("./usr/lib/tests/a.py")) == ("usr/lib/tests/a.py", "excluded")
    assert reason(_member("./usr/big.py", size=101)) == ("usr/big.py", "too_large")
    assert reason(_member("./usr/empty.py", size=0)) == ("usr/empty.py", "empty")
    assert reason(_member("./usr/link.py", 0, tarfile.SYMTYPE)) == ("usr/link.py", "link")
    assert reason(_member("./usr/hard.py", 0, tarfile.LNKTYPE)) == ("usr/hard.py", "link")
    assert reason(_member("../../etc/evil.py")) == (None, "unsafe_path")
    assert reason(_member("/usr/abs.py")) == (None, "unsafe_path")


def test_member_path_strips_leading_folders():
    assert recipes.member_path("linux-source-6.12/kernel/fork.c", 1) == "kernel/fork.c"
    assert recipes.member_path("./a//b/./c.c") == "a/b/c.c"
    assert recipes.member_path("linux-source-6.12/", 1) is None


# --- extraction from a .deb built here -------------------------------------------------------


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", kind=tarfile.REGTYPE, target=""):
    m = tarfile.TarInfo(name)
    m.type, m.mtime, m.linkname = kind, 1_700_000_000, target
    m.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(m, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _build_deb(tmp_path: Path, name: str, files: dict[str, bytes], links=()) -> Path:
    root = tmp_path / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0-1\nArchitecture: all\n"
        "Maintainer: Test <test@example.org>\nDescription: test package\n"
    )
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    for rel, target in links:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(target)
    deb = tmp_path / f"{name}_1.0-1_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def _pkg(deb: Path, name: str, **extra) -> dict:
    return {
        "name": name,
        "version": "1.0-1",
        "architecture": "all",
        "sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
        **extra,
    }


def _recipe(extensions, packages, **extra):
    return {
        "extensions": extensions,
        "max_file_bytes": 1000,
        "val_fraction": 0.1,
        "packages": packages,
        "expect": {},
        "train": "charcode train --language python --repo {corpus} --minutes 1 --val-fraction 0.1",
        **extra,
    }


@needs_dpkg
def test_extract_a_python_package(tmp_path):
    files = {
        "usr/lib/python3/dist-packages/pkg/__init__.py": b"x = 1\n",
        "usr/lib/python3/dist-packages/pkg/core.py": b"def f():\n    return 2\n",
        "usr/lib/python3/dist-packages/pkg/tests/test_core.py": b"assert True\n",
        "usr/lib/python3/dist-packages/pkg/big.py": b"#" * 2000,
        "usr/lib/python3/dist-packages/pkg/empty.py": b"",
        "usr/share/doc/pkg/README": b"docs\n",
    }
    deb = _build_deb(
        tmp_path, "python3-pkg", files, [("usr/lib/python3/dist-packages/pkg/alias.py", "core.py")]
    )
    recipe = _recipe([".py"], [])
    pkg = _pkg(deb, "python3-pkg", exclude=["**/tests/**"])
    out = tmp_path / "out"
    got = recipes.extract_package(deb, recipe, pkg, out)
    assert sorted(got.files) == [
        "usr/lib/python3/dist-packages/pkg/__init__.py",
        "usr/lib/python3/dist-packages/pkg/core.py",
    ]
    assert got.bytes == 6 + 22
    assert got.skipped == Counter(excluded=1, too_large=1, empty=1, link=1)
    core = out / "usr/lib/python3/dist-packages/pkg/core.py"
    assert core.read_bytes() == b"def f():\n    return 2\n"
    assert (
        got.files["usr/lib/python3/dist-packages/pkg/core.py"]
        == hashlib.sha256(core.read_bytes()).hexdigest()
    )
    assert not (out / "usr/share").exists()


FORK_C = b"int fork(void) { return 0; }\n"
SLAB_H = b"#define SLAB 1\n"


def _kernel_tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        _add(tar, "linux-source-9.9", kind=tarfile.DIRTYPE)
        _add(tar, "linux-source-9.9/kernel/fork.c", FORK_C)
        _add(tar, "linux-source-9.9/kernel/fork.o", b"\0ELF")
        _add(tar, "linux-source-9.9/mm/slab.h", SLAB_H)
        _add(tar, "linux-source-9.9/net/socket.c", b"int s;\n")
        _add(tar, "linux-source-9.9/drivers/gpu/drm/amd/include/asic_reg/x.h", b"#define R 1\n")
        _add(tar, "linux-source-9.9/mm/huge.c", b"/* big */\n" * 200)
        _add(tar, "linux-source-9.9/mm/link.c", kind=tarfile.SYMTYPE, target="slab.h")
    return buf.getvalue()


@needs_dpkg
def test_extract_a_kernel_tarball_and_build_a_language(tmp_path, monkeypatch):
    deb = _build_deb(
        tmp_path, "linux-source-9.9", {"usr/src/linux-source-9.9.tar.xz": _kernel_tarball()}
    )
    pkg = _pkg(
        deb,
        "linux-source-9.9",
        tarball="usr/src/linux-source-9.9.tar.xz",
        strip_components=1,
        include=["kernel/**", "mm/**", "drivers/**"],
        exclude=["drivers/gpu/drm/amd/include/asic_reg/**"],
    )
    recipe = _recipe([".c", ".h"], [pkg])
    doc = {"format": 1, "distribution": "test", "languages": {"c": recipe}}
    debs = tmp_path / "debs"
    debs.mkdir()
    shutil.copy(deb, debs / recipes.deb_filename(pkg))

    def no_apt(*_a, **_k):
        raise AssertionError("the pinned .deb is there: apt must not run")

    monkeypatch.setattr(recipes, "_apt_download", no_apt)
    dest = tmp_path / "corpora"
    manifest = recipes.build_language("c", dest, debs, doc=doc)
    folder = dest / "c"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.[ch]")) == [
        "linux-source-9.9/kernel/fork.c",
        "linux-source-9.9/mm/slab.h",
    ]
    (entry,) = manifest["packages"]
    assert entry["skipped"] == {"excluded": 1, "link": 1, "too_large": 1}
    assert entry["sha256"] == pkg["sha256"] and entry["files"] == 2
    assert manifest["files"] == 2 and manifest["bytes"] == len(FORK_C) + len(SLAB_H)
    assert manifest["train_command"].startswith("charcode train --language python --repo ")
    # the listing is sha256sum's format and the tree hash is its hash
    listing = (folder / "FILES.sha256").read_text()
    assert hashlib.sha256(listing.encode()).hexdigest() == manifest["tree_sha256"]
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "-c", "--quiet", "FILES.sha256"], cwd=folder, check=True)
    # a rebuild gives the same tree, which --check then accepts
    expect = {k: manifest[k] for k in ("files", "bytes", "tree_sha256")}
    recipe["expect"] = expect
    again = recipes.build_language("c", dest, debs, doc=doc)
    assert again["tree_sha256"] == expect["tree_sha256"] and again["matches_recipe"] is True
    assert recipes.check_language("c", dest, doc) == expect
    # and notices a changed file
    (folder / "linux-source-9.9/mm/slab.h").write_text("#define SLAB 2\n")
    with pytest.raises(recipes.RecipeError, match=r"linux-source-9.9/mm/slab.h"):
        recipes.check_language("c", dest, doc)


@needs_dpkg
def test_a_deb_that_does_not_match_its_pin_is_downloaded_again(tmp_path, monkeypatch):
    deb = _build_deb(tmp_path, "lua-x", {"usr/share/lua/5.1/x.lua": b"return 1\n"})
    pkg = _pkg(deb, "lua-x")
    debs = tmp_path / "debs"
    debs.mkdir()
    (debs / recipes.deb_filename(pkg)).write_bytes(b"not the pinned file")
    calls = []

    def fake_apt(specs, folder):
        calls.append(specs)
        shutil.copy(deb, Path(folder) / deb.name)
        return subprocess.CompletedProcess(specs, 0, "", "")

    monkeypatch.setattr(recipes, "_apt_download", fake_apt)
    ((path, info),) = recipes.fetch_debs([pkg], debs, "lua")
    assert calls == [["lua-x=1.0-1"]]
    assert path.read_bytes() == deb.read_bytes() and info["sha256"] == pkg["sha256"]


def test_a_version_gone_from_the_archive_says_how_to_move_the_pin(tmp_path, monkeypatch):
    pkg = {"name": "lua-x", "version": "1.0-1", "architecture": "all", "sha256": "0" * 64}

    def fake_apt(specs, folder):
        err = "E: Version '1.0-1' for 'lua-x' was not found\n"
        return subprocess.CompletedProcess(specs, 100, "", err)

    monkeypatch.setattr(recipes, "_apt_download", fake_apt)
    with pytest.raises(recipes.RecipeError) as e:
        recipes.fetch_debs([pkg], tmp_path, "lua")
    msg = str(e.value)
    assert "\n" not in msg
    assert "Version '1.0-1' for 'lua-x' was not found" in msg
    assert "apt-cache policy lua-x" in msg and "--any-version" in msg
    assert "snapshot.debian.org" in msg


def test_the_subcommand_turns_recipe_errors_into_cli_errors(tmp_path):
    from charcode.training.cli import CliError

    parser = argparse.ArgumentParser()
    recipes.add_corpus_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["corpus", "--language", "cobol", "--dest", str(tmp_path)])
    with pytest.raises(CliError, match="no corpus recipe for 'cobol'"):
        args.func(args)
    args = parser.parse_args(["corpus", "--language", "lua", "--dest", str(tmp_path), "--check"])
    with pytest.raises(CliError, match="no lua corpus in"):
        args.func(args)


# --- the n-gram baseline -------------------------------------------------------------------


def test_kneser_ney_by_hand_at_order_1():
    # train: boundary a a a b -> counts boundary 1, a 3, b 1; total 5; N1 = 2, N2 = 0, N3+ = 1
    a, b, c = ord("a"), ord("b"), ord("c")
    train = np.array([256, a, a, a, b], dtype=np.uint16)
    test = np.array([256, a, b, c], dtype=np.uint16)
    d1, d2, d3 = 0.5, 1.0, 1.5
    logp = baselines.kn_log2_probs(train, test, 1, discounts=[(d1, d2, d3)])
    gamma = (d1 * 2 + d3 * 1) / 5  # = 0.5
    expected = [(3 - d3) / 5 + gamma / 257, (1 - d1) / 5 + gamma / 257, gamma / 257]
    assert np.allclose(2**logp, expected)


def _reference_kn(train, test, order, discounts):
    """A plain-dict interpolated modified Kneser-Ney, to check the vectorised one."""
    train, test = list(map(int, train)), list(map(int, test))
    tables = {}
    for n in range(1, order + 1):
        if n == order:
            counts = Counter(tuple(train[i - n + 1 : i + 1]) for i in range(n - 1, len(train)))
        else:
            ext = {tuple(train[i - n : i + 1]) for i in range(n, len(train))}
            counts = Counter(g[1:] for g in ext)
        ctx = defaultdict(lambda: [0, 0, 0, 0])
        for g, cnt in counts.items():
            s = ctx[g[:-1]]
            s[0] += cnt
            s[min(cnt, 3)] += 1
        tables[n] = counts, ctx
    out = []
    for j in range(1, len(test)):
        p = 1 / 257
        for n in range(1, order + 1):
            if j < n - 1:
                break
            counts, ctx = tables[n]
            h = tuple(test[j - n + 1 : j])
            if h not in ctx:
                continue
            total, n1, n2, n3 = ctx[h]
            d = discounts[n - 1]
            cnt = counts.get(h + (test[j],), 0)
            dc = 0 if cnt == 0 else d[min(cnt, 3) - 1]
            p = max(cnt - dc, 0) / total + (d[0] * n1 + d[1] * n2 + d[2] * n3) / total * p
        out.append(math.log2(p))
    return np.array(out)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_kneser_ney_matches_a_plain_reference(order):
    rng = random.Random(order)
    train = np.array([rng.choice(b"abcab \n") for _ in range(3000)], dtype=np.uint16)
    train[::97] = 256
    test = np.array([rng.choice(b"abcabd \n") for _ in range(500)], dtype=np.uint16)
    test[0] = 256
    discounts = [(0.6, 1.1, 1.4), (0.7, 1.2, 1.6), (0.5, 1.0, 1.5), (0.8, 1.3, 1.7)] * 2
    got = baselines.kn_log2_probs(train, test, order, discounts=discounts[:order])
    assert np.allclose(got, _reference_kn(train, test, order, discounts[:order]))


def test_kneser_ney_distributions_sum_to_one():
    rng = random.Random(5)
    train = np.array([rng.choice(b"if x:\n    y = 1\n") for _ in range(5000)], dtype=np.uint16)
    history = [ord(" "), ord(" "), ord("y")]
    test = []
    for w in range(257):
        test += history + [w]
    logp = baselines.kn_log2_probs(train, np.array(test, dtype=np.uint16), 4)
    # position of each w: 3, 7, 11, ... in test; logp[j - 1] scores test[j]
    total = sum(2 ** logp[4 * w + 3 - 1] for w in range(257))
    assert total == pytest.approx(1.0, abs=1e-9)


def test_kneser_ney_on_text_beats_uniform_bytes():
    text = (b"def add(a, b):\n    return a + b\n\n" * 40) + b"def sub(a, b):\n    return a - b\n"
    symbols = np.concatenate([[256], np.frombuffer(text, dtype=np.uint8)]).astype(np.uint16)
    train, test = symbols[:1000], np.concatenate([[256], symbols[1000:]]).astype(np.uint16)
    bits, n = baselines.kn_bits_per_byte(train, test, 6)
    assert n == len(test) - 1
    assert math.isfinite(bits) and 0 < bits < 8


def test_discount_estimates():
    # n1..n4 = 4, 2, 1, 1 -> Y = 4 / 8 = 0.5; D1 = 1 - 2*0.5*2/4, D2 = 2 - 3*0.5*1/2, D3 = 3 - 4*0.5*1/1
    counts = np.array([1, 1, 1, 1, 2, 2, 3, 4])
    assert baselines.kn_discounts(counts) == pytest.approx((0.5, 1.25, 1.0))


# --- compressors and sampling --------------------------------------------------------------


def test_compressor_figures_on_a_given_text():
    import bz2
    import gzip
    import lzma

    data = b"static int count(struct list *l)\n{\n\treturn l->n;\n}\n" * 200
    got = {r["method"]: r for r in baselines.compressor_bits(data)}
    assert got["gzip -9"]["bits_per_byte"] == 8 * len(gzip.compress(data, 9, mtime=0)) / len(data)
    assert got["bzip2 -9"]["bits_per_byte"] == 8 * len(bz2.compress(data, 9)) / len(data)
    xz = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    assert got["xz -9e"]["bits_per_byte"] == 8 * len(xz) / len(data)
    for r in got.values():  # repetitive text: all far below 8 bits, or skipped with a note
        assert r["bits_per_byte"] is None or 0 < r["bits_per_byte"] < 1, r
        assert r["bits_per_byte"] is not None or r["note"].startswith("skipped: pip install")


def test_sampling_whole_documents():
    docs = [np.concatenate([[256], np.full(k, 97)]) for k in range(1, 101)]
    symbols = np.concatenate(docs).astype(np.uint16)
    assert np.array_equal(baselines.sample_documents(symbols, len(symbols)), symbols)
    sample = baselines.sample_documents(symbols, len(symbols) // 4)
    assert len(sample) <= len(symbols) // 4
    assert sample[0] == 256
    starts = baselines.document_starts(sample)
    assert 15 <= len(starts) <= 30  # about a quarter of the documents, spread out
    assert baselines.text_bytes(np.array([256, 104, 105, 256, 33])) == b"hi!"


def test_the_bench_scores_a_model_beside_the_baselines(
    python_repo, cache_dir, tiny_python_model, capsys
):
    import json

    from charcode.training.checkpoint import load_checkpoint
    from charcode.training.corpus import build_corpus
    from charcode.training.evaluate import bits_per_char

    argv = ["--language", "python", "--repo", str(python_repo), "--cache-dir", str(cache_dir)]
    code = baselines.main(
        [*argv, "--order", "4", "--model", str(tiny_python_model), "--json", "-q"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["val_fraction"] == 0.05  # no MANIFEST.json: charcode train's default
    methods = [r["method"] for r in out["results"]]
    assert methods[:3] == ["gzip -9", "bzip2 -9", "xz -9e"]
    assert "4-gram Kneser-Ney" in methods and methods[-1].startswith("charcode 1x32 LSTM")
    corpus = build_corpus([python_repo], "python", cache_dir=cache_dir)
    assert out["heldout"]["bytes"] == corpus.summary["val_bytes"]
    model = load_checkpoint(tiny_python_model).model
    expected, _ = bits_per_char(model, np.array(corpus.val))
    assert out["results"][-1]["bits_per_byte"] == pytest.approx(expected)
    for r in out["results"]:
        assert r["bits_per_byte"] is None or 0 < r["bits_per_byte"] < 8


def test_held_out_packages_train_no_model():
    """A package held out for validation in one recipe is in no recipe's training packages
    (c-kernel, the shipped C model's corpus, splits by file and holds out none)."""
    doc = recipes.load_recipes()
    trained = {
        name: {
            (p["name"], recipes.package_dir(p))
            for p in recipe["packages"]
            if recipes.package_dir(p) not in recipes.val_packages(recipe)
        }
        for name, recipe in doc["languages"].items()
    }
    for name, recipe in doc["languages"].items():
        held = {
            p["name"]
            for p in recipe["packages"]
            if recipes.package_dir(p) in recipes.val_packages(recipe)
        }
        for other, pkgs in trained.items():
            clash = held & {n for n, _ in pkgs}
            assert not clash, f"{name} holds out {sorted(clash)}, which {other} trains on"
