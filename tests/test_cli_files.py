"""The command line without its extras, and the files it writes: checked before the work, written
atomically (a full disk leaves the previous file whole), reported exactly."""

from __future__ import annotations

import os
import re
import resource
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from losslab._files import atomic_write, output_file, output_folder, wrote
from losslab.cli import main

NO_RICH = "import sys; sys.modules['rich'] = None; from losslab.cli import main; main(sys.argv[1:])"


def run(*args: str, code: str | None = None, cwd: Path | None = None, file_limit: int | None = None):
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "losslab.cli", *args]
    limit = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))) if file_limit else None
    return subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=cwd,
                          preexec_fn=limit)


@pytest.mark.parametrize(("args", "expected"), [
    (("list",), r"huber\s+regression\s+regression\s+yes\s+yes\s+yes\s+yes"),
    (("show", "info_nce"), r"P_ij - \[i = j\]"),
    (("compare", "--pred", "1", "2", "--target", "1", "3"), r"huber \(delta=1\)\s+0\.2500\s+\[0\.0000, -0\.5000\]"),
    (("ce", "--logits", "2", "1", "0.1", "--target", "0", "--label-smoothing", "0.1"),
     r"loss = \(1 - 0\.1\) \(-log p\[0\]\) \+ 0\.1 mean_k\(-log p\[k\]\) = 0\.5137"),
    (("examples", "--seed", "000"), r"-log softmax\(z\)\[y\]"),
])
def test_the_core_install_prints_plain_tables_without_rich(args, expected):
    out = run(*args, code=NO_RICH)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "[bold]" not in out.stdout and "│" not in out.stdout
    assert re.search(expected, out.stdout), out.stdout[:2000]


@pytest.mark.parametrize(("args", "kept"), [
    (("show", "info_nce"), "(P_ij - [i = j])"),  # rich took "[i = j]" for a style and printed "(P_ij - )"
    (("examples", "--seed", "000"), "-log softmax(z)[y]"),
    (("examples", "--seed", "000"), "-[y log p + (1-y) log(1-p)]"),
])
def test_rich_prints_brackets_in_formulas_as_they_are(args, kept, capsys):
    main(list(args))
    assert kept in capsys.readouterr().out


def test_plot_names_exactly_the_file_it_wrote(tmp_path, capsys):
    main(["plot", "landscape", "--loss", "huber", "--out", str(tmp_path / "noext")])
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'noext.png'}"
    assert (tmp_path / "noext.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "noext").exists()
    main(["plot", "landscape", "--loss", "huber", "--out", str(tmp_path)])  # a folder: the figure's name inside it
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'landscape-huber.png'}"
    main(["plot", "compare", "--loss", "binary_cross_entropy_with_logits", "mse:sigmoid", "--out", str(tmp_path)])
    assert (tmp_path / "compare-binary_cross_entropy_with_logits-mse_sigmoid.png").exists()
    capsys.readouterr()
    main(["plot", "landscape", "--loss", "huber", "--out", str(tmp_path / "noext.png")])
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'noext.png'} (replaced the previous file)"
    main(["plot", "landscape", "--out", str(tmp_path / "fig.svg")])
    assert (tmp_path / "fig.svg").read_text().startswith("<?xml")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


@pytest.mark.parametrize(("out", "extra", "message"), [
    ("nodir/x.png", (), "the folder 'nodir' of 'nodir/x.png' does not exist"),
    ("x.xyz", (), "cannot write '.xyz' files"),
    ("x.png", ("--dpi", "100000"), r"dpi must be a whole number in \[10, 600\], got 100000"),
    ("x.png", ("--dpi", "0"), "dpi must be a whole number"),
])
def test_plot_refuses_an_output_it_cannot_write_before_drawing(tmp_path, monkeypatch, out, extra, message):
    monkeypatch.chdir(tmp_path)
    import losslab.plots

    monkeypatch.setattr(losslab.plots, "landscape", lambda *a, **k: pytest.fail("drew before checking the output"))
    monkeypatch.setitem(losslab.plots.PLOTS, "landscape", losslab.plots.landscape)
    with pytest.raises(SystemExit, match=message):
        main(["plot", "landscape", "--out", out, *extra])
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_leaves_the_previous_file_whole_and_no_partial_file(tmp_path):
    good = tmp_path / "fig.svg"
    assert run("plot", "landscape", "--out", str(good)).returncode == 0
    before = good.read_bytes()
    assert len(before) > 20_000
    # the file-size limit makes the write fail with EFBIG after 10 kB, as a full disk would
    out = run("plot", "landscape", "--loss", "huber", "--out", str(good), file_limit=10_000)
    assert out.returncode == 1 and "error: cannot write" in out.stderr and "nothing was written" in out.stderr
    assert good.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["fig.svg"]
    out = run("plot", "landscape", "--out", str(tmp_path / "new.svg"), file_limit=10_000)
    assert out.returncode == 1 and not (tmp_path / "new.svg").exists() and len(list(tmp_path.iterdir())) == 1


def test_experiment_checks_its_output_folder_before_the_run(tmp_path, capsys):
    a_file = tmp_path / "plots"
    a_file.write_text("not a folder")
    start = time.perf_counter()
    with pytest.raises(SystemExit, match="is a file; --out takes a folder"):
        main(["experiment", "sigmoid-trap", "--out", str(a_file)])
    assert capsys.readouterr().out == "" and time.perf_counter() - start < 5  # nothing was trained
    with pytest.raises(SystemExit, match="no experiment named 'nope'"):
        main(["experiment", "nope", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_experiment_says_which_plots_it_wrote_and_which_it_replaced(tmp_path, capsys):
    folder = tmp_path / "new" / "plots"  # created, parents included
    main(["experiment", "convexity", "--out", str(folder)])
    assert capsys.readouterr().out.strip().endswith(f"wrote {folder / 'convexity-1.png'}")
    main(["experiment", "convexity", "--out", str(folder)])
    assert capsys.readouterr().out.strip().endswith(f"wrote {folder / 'convexity-1.png'} (replaced the previous file)")


def test_atomic_write_keeps_modes_and_cleans_up(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write(target, lambda tmp: tmp.write_text("one"))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    target.chmod(0o640)
    atomic_write(target, lambda tmp: tmp.write_text("two"))
    assert target.read_text() == "two" and stat.S_IMODE(target.stat().st_mode) == 0o640

    def fails(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, fails)
    assert target.read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_output_paths(tmp_path):
    assert output_file(tmp_path / "x", "d.png", ["png", "svg"]) == tmp_path / "x.png"
    assert output_file(tmp_path, "d.png", ["png"]) == tmp_path / "d.png"
    assert output_file(tmp_path / "X.SVG", "d.png", ["png", "svg"]) == tmp_path / "X.SVG"
    (tmp_path / "dir.png").mkdir()
    assert output_file(tmp_path / "dir.png", "d.png", ["png"]) == tmp_path / "dir.png" / "d.png"
    with pytest.raises(ValueError, match=r"use one of: \.png, \.svg"):
        output_file(tmp_path / "x.gif", "d.png", ["svg", "png"])
    assert output_folder(tmp_path / "a" / "b").is_dir()
    assert wrote([tmp_path / "a.png", tmp_path / "b.png"], [tmp_path / "b.png"]) == (
        f"wrote {tmp_path / 'a.png'}, {tmp_path / 'b.png'} (replaced the previous file)")


@pytest.mark.parametrize(("args", "message"), [
    (("compare", "--pred", "1e400", "--target", "1"), "argument --pred: '1e400' is not a finite number (beyond float64's range)"),
    (("compare", "--pred", "1", "--target", "1", "--delta", "nan"), "argument --delta: 'nan' is not a finite number"),
    (("ce", "--logits", "inf", "1", "--target", "0"), "argument --logits: 'inf' is not a finite number"),
    (("ce", "--logits", "1", "2", "--target", "99999999999999999999999"), "an integer beyond int64's range"),
    (("plot", "landscape", "--target", "nan", "--out", "x.png"), "argument --target: 'nan' is not a finite number"),
    (("plot", "landscape", "--option", "delta=-inf", "--out", "x.png"), "--option delta: '-inf' is not a finite number"),
])
def test_numbers_the_command_line_cannot_use_are_refused(tmp_path, args, message):
    out = run(*args, cwd=tmp_path)
    assert out.returncode == 2 if "argument" in message else out.returncode == 1
    assert message in out.stderr and "Traceback" not in out.stderr and out.stdout == ""
    assert list(tmp_path.iterdir()) == []
