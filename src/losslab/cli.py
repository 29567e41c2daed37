"""The ``losslab`` command line: list losses, show one, compare regression losses on the same
errors (the seeds' playground), and take a softmax cross-entropy apart.

argparse (standard library) parses, because options take space-separated number lists
(``--pred 1.5 2.5 3.0``), which click/typer options cannot; rich draws the tables when the 'cli'
extra is installed, and plain aligned text does without it (the core install).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import numpy as np

from . import __version__
from ._json import dumps
from .advisor.recommend import TASKS as ADVISOR_TASKS
from .playground import compare, cross_entropy_report
from .registry import FAMILIES, TASKS, get, losses

COMPARE_OPTIONS = ("delta", "beta", "q", "margin")
_MARKUP = re.compile(r"(?<!\\)\[/?bold\]")  # the only style this module's own text uses


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _escape(text: object) -> str:
    """Data (formulas such as "-log softmax(z)[y]") printed as it is: rich would take "[y]" for a style."""
    return str(text).replace("[", "\\[")


class _Table:
    """Rows of text (never markup); drawn by rich when the 'cli' extra is installed, else as aligned
    plain text (the core install has no rich). ``alert`` rows are drawn in bold red."""

    def __init__(self, title: str, columns: list[str]) -> None:
        self.title, self.columns, self.rows = title, columns, []

    def add_row(self, *cells: object, alert: bool = False) -> None:
        self.rows.append(([str(c) for c in cells], alert))

    def _left(self, i: int) -> bool:
        return i == 0 or self.columns[i] in ("tasks", "family")

    def rich(self):
        from rich.table import Table

        table = Table(title=_escape(self.title), title_justify="left")
        for i, name in enumerate(self.columns):
            table.add_column(name, justify="left" if self._left(i) else "right",
                             no_wrap=i == 0 or name.startswith("gradient"))
        for cells, alert in self.rows:
            table.add_row(*map(_escape, cells), style="bold red" if alert else None)
        return table

    def __str__(self) -> str:
        lines = [self.columns, *(cells for cells, _ in self.rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self.columns))]
        text = ["  ".join(c.ljust(w) if self._left(i) else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
                for line in lines]
        return "\n".join([self.title, text[0], "  ".join("-" * w for w in widths), *text[1:]])


def _say(item: _Table | str = "") -> None:
    """Print a table, or a line of text in which [bold]...[/bold] marks emphasis and data went through _escape."""
    if not _has_rich():
        print(item if isinstance(item, _Table) else _MARKUP.sub("", item).replace("\\[", "["))
        return
    from rich.console import Console

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)  # pipes: no 80-column squeeze
    console.print(item.rich() if isinstance(item, _Table) else item)


def _finite(text: str) -> float:
    """An argparse type: a finite number ("1e400" would be inf, "nan" no number at all)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number" + (" (beyond float64's range)" if "e" in text.lower() or len(text) > 300 else ""))
    return value


def _numbers(values: list[float]) -> str:
    return "[" + ", ".join(f"{v + 0.0:.4f}" for v in values) + "]"  # + 0.0: no "-0.0000"


def _cmd_list(args) -> None:
    specs = losses(family=args.family, task=args.task)
    if args.json:
        print(dumps([s.to_dict() for s in specs]))
        return
    table = _Table("losslab losses (losslab show NAME for formulas)", ["name", "family", "tasks", "convex", "smooth", "robust", "hessian"])
    for s in specs:
        flags = (s.convex, s.smooth, s.robust_to_outliers, s.has_hessian)
        table.add_row(s.name, s.family, ", ".join(s.tasks), *("yes" if f else "no" for f in flags))
    _say(table)


def _cmd_show(args) -> None:
    spec = get(args.name)
    if args.json:
        print(dumps(spec.to_dict()))
        return
    e = _escape
    _say(f"[bold]{spec.name}[/bold] ({spec.family}; {', '.join(spec.tasks)}): {e(spec.summary)}\n")
    _say(f"[bold]loss[/bold]\n{e(spec.formula_text)}\n\n[bold]gradient[/bold]\n{e(spec.gradient_text)}")
    if spec.hessian_text:
        _say(f"\n[bold]hessian[/bold]\n{e(spec.hessian_text)}")
    _say(f"\n[bold]output layer[/bold]: {e(spec.output_layer)}\n[bold]use it for[/bold]: {e(spec.when_to_use)}")
    for option in spec.options:
        _say(f"[bold]option[/bold] {option.name} ({e(option.valid)}): {e(option.description)}")
    if spec.conventions:
        _say(f"[bold]conventions[/bold]: {e(spec.conventions)}")
    _say("[bold]equivalents[/bold]: " + e("; ".join(f"{k}: {v}" for k, v in spec.peers.items())))


def _cmd_compare(args) -> None:
    if len(args.pred) != len(args.target):
        sys.exit(f"error: --pred has {len(args.pred)} numbers but --target has {len(args.target)}; give one target per prediction")
    try:
        board = compare(args.pred, args.target, **{k: getattr(args, k) for k in COMPARE_OPTIONS})
    except (ValueError, TypeError) as err:
        sys.exit(f"error: {err}")
    if args.json:
        print(dumps({name: {"value": r["value"], "grad": r["grad"]} for name, r in board.results.items()}))
        return
    if not board.results:
        sys.exit("error: no loss applies to these numbers:\n" + "\n".join(f"  {k}: {v}" for k, v in board.not_applicable.items()))
    table = _Table(f"Losses for predictions {_numbers(args.pred)}, targets {_numbers(args.target)} (mean over {len(args.pred)})",
                   ["loss", "value", "gradient d loss / d pred"])
    for name, r in board.results.items():
        label = name + "".join(f" ({k}={v:g})" for k, v in r["options"].items())
        table.add_row(label, f"{r['value']:.4f}", _numbers(r["grad"]))
    _say(table)
    if board.not_applicable:
        _say("not applicable to these numbers: " + ", ".join(board.not_applicable)
                      + " (0/1 targets add the binary losses, -1/+1 targets the hinge losses)")


def _cmd_ce(args) -> None:
    try:
        report = cross_entropy_report(args.logits, args.target, args.label_smoothing)
    except (ValueError, TypeError) as err:
        sys.exit(f"error: {err}")
    if args.json:
        print(dumps(report))
        return
    table = _Table(f"Softmax cross-entropy, true class {args.target}", ["class", "logit", "softmax p", "gradient p - y"])
    for k, (z, p, g) in enumerate(zip(report["logits"], report["probabilities"], report["grad"])):
        marker = " <- true" if k == args.target else ""
        table.add_row(f"{k}{marker}", f"{z:.4f}", f"{p:.4f}", f"{g:+.4f}")
    _say(table)
    e = args.label_smoothing
    what = (f"(1 - {e:g}) (-log p[{args.target}]) + {e:g} mean_k(-log p[k])" if e else f"-log p[{args.target}]")
    _say(f"loss = {_escape(what)} = [bold]{report['loss']:.4f}[/bold]"
                  + (f"  (label_smoothing={e:g})" if e else ""))


def _read_csv(path: str) -> tuple[list[str], list[dict]]:
    """A CSV file with a header row: (column names, rows as dicts), every problem an error naming the file."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark is not part of a name
            reader = csv.reader(f)
            header = next(reader, [])
            body = list(reader)
    except OSError as err:
        sys.exit(f"error: cannot read {path}: {err.strerror}")
    except UnicodeDecodeError as err:
        sys.exit(f"error: {path} is not UTF-8 text (byte {err.start}): save it as UTF-8 CSV")
    except csv.Error as err:
        sys.exit(f"error: {path} is not a CSV file: {err}")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        sys.exit(f"error: {path} names column(s) {duplicated} more than once; give every column its own name")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            sys.exit(f"error: line {line} of {path} has {len(row)} values but the header names {len(header)} columns")
    return header, [dict(zip(header, row)) for row in body]


def _read_columns(path: str, columns: list[str] | None) -> np.ndarray:
    """Numeric columns of a CSV file with a header row (all numeric columns when none are named)."""
    header, rows = _read_csv(path)
    if not rows:
        sys.exit(f"error: {path} has no data rows")
    names = columns or header
    missing = [c for c in names if c not in header]
    if missing:
        sys.exit(f"error: {path} has no column {missing[0]!r}; its columns are {header}")
    try:
        data = np.array([[float(r[c]) for c in names] for r in rows])
    except ValueError as err:
        sys.exit(f"error: a value in column(s) {names} of {path} is not a number ({err})")
    return data[:, 0] if data.shape[1] == 1 else data


def _cmd_recommend(args) -> None:
    from .advisor import recommend

    if args.task is None and args.targets is None:
        sys.exit("error: give --task or --targets FILE.csv (with --column NAME)")
    if args.targets and not args.column:
        names = _read_csv(args.targets)[0]
        if len(names) > 1:  # never mix an id column into the targets in silence
            sys.exit(f"error: {args.targets} has columns {names}: name the targets' column with --column NAME")
    targets = _read_columns(args.targets, args.column) if args.targets else None
    try:
        rec = recommend(args.task, targets=targets)
    except (ValueError, TypeError) as err:
        sys.exit(f"error: {err}")
    print(dumps(rec.to_dict()) if args.json else rec)


def _cmd_experiment(args) -> None:
    from .experiments import EXPERIMENTS, run
    from .experiments._core import check_name

    if args.name is None:
        for name, what in EXPERIMENTS.items():
            print(f"{name:14s} {what}")
        return
    check_name(args.name)  # a KeyError: main() prints it
    existed: list[Path] = []
    if args.out:  # checked before the run, which can take a while, not after it
        from ._files import output_folder
        from .plots import _pyplot

        try:
            _pyplot()
            folder = output_folder(args.out)
        except (ImportError, ValueError) as err:
            sys.exit(f"error: {err}")
        existed = list(folder.glob(f"{args.name}-*.png"))
    options = _key_values(args.option)
    flags = sorted({"lr", "epochs", "seed", "losses"} & set(options))
    if flags:
        sys.exit(f"error: give {flags[0]} as --{flags[0]}, not in --option")
    settings = {"losses": args.losses, "lr": args.lr, "epochs": args.epochs, **options}
    try:
        result = run(args.name, progress=not args.json and sys.stderr.isatty(), seed=args.seed,
                     **{k: v for k, v in settings.items() if v is not None})
    except (ValueError, TypeError) as err:
        sys.exit(f"error: {err}")
    if args.json:
        print(dumps(result.to_dict()))
    else:
        print(result)
    if args.out:
        from ._files import wrote

        paths = result.save_plots(args.out)
        print(("\n" if not args.json else "") + wrote(paths, existed), file=sys.stderr if args.json else sys.stdout)


def _cmd_metrics(args) -> None:
    from . import metrics as m

    y, scores = _read_columns(args.csv, [args.labels, args.scores]).T  # one read of the file
    try:
        report = {"accuracy": m.accuracy(y, scores, threshold=args.threshold),
                  "balanced_accuracy": m.balanced_accuracy(y, scores, threshold=args.threshold),
                  "precision": m.precision(y, scores, threshold=args.threshold),
                  "recall": m.recall(y, scores, threshold=args.threshold),
                  "f1": m.f1(y, scores, threshold=args.threshold),
                  "roc_auc": m.roc_auc(y, scores), "average_precision": m.average_precision(y, scores)}
        if 0 <= scores.min() and scores.max() <= 1:
            report["log_loss"], report["brier_score"] = m.log_loss(y, scores), m.brier_score(y, scores)
        target = {"recall": args.recall, "precision": args.precision}
        choice = m.threshold_for(y, scores, **{k: v for k, v in target.items() if v is not None}) if any(
            v is not None for v in target.values()) else None
    except (ValueError, TypeError) as err:
        sys.exit(f"error: {err}")
    if args.json:
        print(dumps({**report, "threshold_for": None if choice is None else choice.__dict__}))
        return
    table = _Table(f"Binary metrics ({y.size} items, threshold {args.threshold:g} for the label metrics)", ["metric", "value"])
    for name, value in report.items():
        table.add_row(name, f"{value:.4f}")
    _say(table)
    if choice is not None:
        _say(_escape(choice))


def _cmd_check(args) -> None:
    from .advisor import check_inputs

    table = _read_columns(args.csv, [*args.inputs, *([args.targets] if args.targets else [])])  # one read
    table = table.reshape(table.shape[0], -1)
    x, targets = (table[:, :-1], table[:, -1]) if args.targets else (table, None)
    if x.shape[1] == 1:
        x = x[:, 0]
    if targets is not None and args.loss in ("cross_entropy", "nll"):
        fractional = targets[targets != np.round(targets)]
        if fractional.size:  # never truncate 1.7 to class 1 in silence
            sys.exit(f"error: column {args.targets!r} holds values that are not class indices: "
                     f"{sorted(set(fractional.tolist()))[:5]}; {args.loss} targets are whole numbers 0..C-1")
        targets = targets.astype(int)
    try:
        findings = check_inputs(args.loss, x, targets)
    except KeyError as err:
        sys.exit(f"error: {err.args[0]}")
    if args.json:
        print(dumps([f.__dict__ for f in findings]))
    elif not findings:
        print(f"no problem found: these inputs fit {args.loss}")
    else:
        for f in findings:
            print(f"{f}\n")
    if findings:
        sys.exit(1)  # a script can act on it: 0 means the inputs fit the loss


def _cmd_examples(args) -> None:
    from .examples import check

    results = check(args.seed)
    if args.json:
        print(dumps([r.to_dict() for r in results]))
        return
    table = _Table("The seed documents' worked examples, recomputed", ["seed", "example", "formula", "printed", "computed", "verdict"])
    for r in results:
        e = r.example
        verdict = "-" if r.agrees is None else ("matches" if r.agrees else "DIFFERS")
        table.add_row(e.seed, e.title, e.formula, "-" if e.printed is None else f"{e.printed:.10g}", f"{r.computed:.4f}", verdict,
                      alert=r.agrees is False)
    _say(table)
    wrong = sum(r.agrees is False for r in results)
    if wrong:
        numbers = "number differs" if wrong == 1 else "numbers differ"
        _say(f"{wrong} printed {numbers} from what their own inputs give (see docs/seed-numbers.md).")


def _key_values(items: list[str] | None) -> dict[str, float]:
    """--option KEY=VALUE ... as {KEY: a finite number}."""
    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"error: --option takes KEY=VALUE, got {item!r}")
        try:
            options[key] = _finite(value)
        except argparse.ArgumentTypeError as err:
            sys.exit(f"error: --option {key}: {err}")
    return options


def _cmd_plot(args) -> None:
    from ._files import output_file, wrote

    try:
        from .plots import PLOTS, check_dpi, formats, save

        check_dpi(args.dpi)
        default_name = "-".join([args.name, *(args.loss or [])]).replace(":", "_") + ".png"
        path = output_file(args.out, default_name, formats())  # before drawing: the mistake is told first
    except (ImportError, ValueError) as err:
        sys.exit(f"error: {err}")
    existed = [path] if path.exists() else []
    options = _key_values(args.option)
    kind = PLOTS[args.name]
    try:
        if args.name == "landscape":
            fig = kind(args.loss[0] if args.loss else "mse", target=args.target, **options)
        elif args.name == "compare":
            fig = kind(tuple(args.loss) if args.loss else ("mse", "mae", "huber"), target=args.target)
        elif args.name == "outlier" and args.loss:
            fig = kind(tuple(args.loss))
        else:
            fig = kind()
    except (KeyError, ValueError, TypeError) as err:
        sys.exit(f"error: {err.args[0] if isinstance(err, KeyError) else err}")
    try:
        save(fig, path, dpi=args.dpi)
    except OSError as err:
        sys.exit(f"error: cannot write {path}: {err.strerror or err}; nothing was written")
    print(wrote([path], existed))


def _cmd_quiz(args) -> None:
    from .quiz import grade, questions

    qs = [q for q in questions() if args.id is None or q.id == args.id]
    if not qs:
        sys.exit(f"error: no question {args.id!r}; the questions are {[q.id for q in questions()]}")
    if args.json:
        print(dumps([q.public() for q in qs]))
        return
    letters = "abcdefgh"
    right = answered = 0
    for number, q in enumerate(qs, 1):
        print(f"\n{number}. {q.stem}  ({q.source})")
        for i, choice in enumerate(q.choices):
            print(f"   {letters[i]}) {choice}")
        if not q.graded:
            print("   (an open exercise: think it through, then press Enter for a model answer)", flush=True)
            if not sys.stdin.readline():
                break
            print(f"   {grade(q.id, 0)['explanation']}")
            continue
        print("   your answer (letter, or q to stop): ", end="", flush=True)
        line = sys.stdin.readline()
        if not sys.stdin.isatty():
            print(line.strip())  # answers piped in: show them as if typed
        if not line or line.strip().lower() == "q":
            print()
            break
        pick = line.strip().lower()[:1]
        if pick not in letters[: len(q.choices)]:
            print(f"   (no answer '{line.strip()}'; the choices are {letters[0]}-{letters[len(q.choices) - 1]})")
            continue
        verdict = grade(q.id, letters.index(pick))
        answered += 1
        right += verdict["correct"]
        headline = "Correct." if verdict["correct"] else f"Not quite: the answer is {letters[verdict['answer']]})."
        print(f"   {headline} {verdict['explanation']}")
    print(f"\n{right} of {answered} answered correctly.")


def _cmd_explore(args) -> None:
    try:
        from .web import bind, serve
        from .web.server import url_of
    except ImportError as err:
        sys.exit(f"error: the explorer needs the 'web' extra ({err.name} is missing): pip install 'losslab[web]'")
    try:
        sock = bind(args.host, args.port)
    except ValueError as err:
        sys.exit(f"error: {err}")
    print(f"losslab explorer: {url_of(sock)}  (Ctrl+C stops it)", flush=True)
    try:
        serve(sock, open_browser=args.open)
    except KeyboardInterrupt:
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="losslab", description="Loss functions: values, gradients and what they mean.")
    parser.add_argument("--version", action="version", version=f"losslab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list every loss of the registry")
    p.add_argument("--family", choices=FAMILIES)
    p.add_argument("--task", choices=TASKS)
    p.add_argument("--json", action="store_true", help="print the specs as JSON")
    p.set_defaults(run=_cmd_list)

    p = sub.add_parser("show", help="formula, gradient and properties of one loss")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_show)

    p = sub.add_parser("compare", help="every loss that applies to the same predictions and targets, with gradients (the playground)")
    p.add_argument("--pred", type=_finite, nargs="+", required=True, help="predictions, separated by spaces")
    p.add_argument("--target", type=_finite, nargs="+", required=True, help="targets, one per prediction")
    p.add_argument("--delta", type=_finite, default=1.0, help="Huber's delta (default 1.0)")
    p.add_argument("--beta", type=_finite, default=1.0, help="smooth L1's beta (default 1.0)")
    p.add_argument("--q", type=_finite, default=0.5, help="the quantile loss's q (default 0.5)")
    p.add_argument("--margin", type=_finite, default=1.0, help="the hinge losses' margin (default 1.0)")
    p.add_argument("--json", action="store_true", help='print {"loss": {"value": ..., "grad": [...]}}')
    p.set_defaults(run=_cmd_compare)

    p = sub.add_parser("recommend", help="which loss, options, output layer and metrics for a task or for your targets")
    p.add_argument("--task", choices=ADVISOR_TASKS)
    p.add_argument("--targets", metavar="FILE.csv", help="a CSV file with a header row")
    p.add_argument("--column", nargs="+", metavar="NAME", help="the target column(s); several make a multi-label/multi-output target")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_recommend)

    p = sub.add_parser("plot", help="draw a figure: landscape, compare, confidence, outlier, gradient, parameter-landscape, accuracy-vs-loss")
    p.add_argument("name", choices=("landscape", "compare", "confidence", "outlier", "gradient", "parameter-landscape", "accuracy-vs-loss"))
    p.add_argument("--loss", nargs="+", metavar="NAME", help="the loss(es): one for landscape, several for compare ('mse:sigmoid' allowed)")
    p.add_argument("--target", type=_finite, help="the target for regression landscapes (default 3)")
    p.add_argument("--option", nargs="+", metavar="KEY=VALUE", help="loss options, e.g. delta=0.5")
    p.add_argument("--out", required=True, metavar="FILE.png|svg|pdf",
                   help="the file (no extension: .png), or an existing folder (the figure's own name inside it)")
    p.add_argument("--dpi", type=int, default=110, help="resolution of PNG files, 10 to 600 (default 110)")
    p.set_defaults(run=_cmd_plot)

    p = sub.add_parser("examples", help="every worked example of the seed documents, recomputed, with the printed number")
    p.add_argument("--seed", choices=("000", "001", "002", "003", "004"), help="one seed document only")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_examples)

    p = sub.add_parser("metrics", help="evaluation metrics for binary labels and scores in a CSV file")
    p.add_argument("csv", metavar="FILE.csv")
    p.add_argument("--labels", required=True, metavar="COLUMN", help="the 0/1 labels")
    p.add_argument("--scores", required=True, metavar="COLUMN", help="the model's scores or probabilities")
    p.add_argument("--threshold", type=_finite, default=0.5)
    p.add_argument("--recall", type=_finite, help="also find the threshold reaching this recall (e.g. 0.99)")
    p.add_argument("--precision", type=_finite, help="also find the threshold reaching this precision")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_metrics)

    p = sub.add_parser("check", help="does this data fit the loss? (probabilities passed as logits, indices out of range, ...)")
    p.add_argument("loss")
    p.add_argument("csv", metavar="FILE.csv")
    p.add_argument("--inputs", nargs="+", required=True, metavar="COLUMN", help="the model-output column(s), one per class")
    p.add_argument("--targets", metavar="COLUMN")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_check)

    p = sub.add_parser("experiment", help="run a small training experiment that tests a seed claim (no NAME: list them)")
    p.add_argument("name", nargs="?")
    p.add_argument("--out", metavar="DIR", help="save the experiment's plots (PNG) in this folder (created if needed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--losses", nargs="+", metavar="NAME", help="the losses to race (training experiments; quote names "
                   "with spaces: 'bce + pos_weight')")
    p.add_argument("--lr", type=_finite, help="learning rate (default: the experiment's)")
    p.add_argument("--epochs", type=int, help="epochs of gradient descent (default: the experiment's)")
    p.add_argument("--option", nargs="+", metavar="KEY=VALUE", help="loss options: delta, beta, pos_weight, alpha, "
                   "gamma, label_smoothing (python -c \"import losslab.experiments as lx; print(lx.describe('outliers'))\")")
    p.add_argument("--json", action="store_true", help="print the table, histories and claims as JSON")
    p.set_defaults(run=_cmd_experiment)

    p = sub.add_parser("quiz", help="the seeds' self-check questions in the terminal, graded (the explorer has them too)")
    p.add_argument("--id", help="one question only (losslab quiz --json lists them)")
    p.add_argument("--json", action="store_true", help="print the questions (without answers) as JSON")
    p.set_defaults(run=_cmd_quiz)

    p = sub.add_parser("explore", help="the web explorer: losses, live landscapes, playground, confidence, quiz (offline)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one, printed at start)")
    p.add_argument("--open", action="store_true", help="open the page in the system's web browser")
    p.set_defaults(run=_cmd_explore)

    p = sub.add_parser("ce", help="softmax probabilities, cross-entropy and its gradient for one row of logits")
    p.add_argument("--logits", type=_finite, nargs="+", required=True)
    p.add_argument("--target", type=int, required=True, help="the true class index")
    p.add_argument("--label-smoothing", type=_finite, default=0.0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_ce)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except KeyError as err:  # an unknown loss name
        sys.exit(f"error: {err.args[0]}")
    except BrokenPipeError:  # the reader went away (losslab list --json | head): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the final flush cannot fail again
        sys.exit(1)


if __name__ == "__main__":
    main()
