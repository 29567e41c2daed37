"""Generate the per-loss reference (docs/losses.md) from the registry, so docs and code cannot
disagree. ``python -m losslab.docs [PATH]`` writes it; the test suite checks it is current."""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from ._files import atomic_write
from .registry import FAMILIES, get_loss, losses


def _signature(name: str) -> str:
    return f"ll.{name}{inspect.signature(get_loss(name))}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render() -> str:
    out = [
        "# Loss reference",
        "",
        "Generated from the registry by `python -m losslab.docs` — do not edit by hand.",
        "Every loss takes `reduction` (`\"none\"`, `\"mean\"`, `\"sum\"`; default `\"mean\"`) and `normalizer=K`",
        "(with `\"mean\"`: divide the weighted sum by K, e.g. the global token count under gradient accumulation),",
        "and has `.grad(...)` and `.value_and_grad(...)` with the same arguments. The gradient is the analytic one,",
        "written by hand next to the value; for `reduction=\"none\"` it is the gradient of the sum.",
        "",
        "Properties, as the test suite checks them: *convex* in the prediction input(s); *smooth*: continuously",
        "differentiable; *robust to outliers*: the gradient stays bounded however far a prediction moves from its",
        "target, so one extreme example cannot dominate an update (a bounded influence, not a bounded loss).",
        "",
        "| loss | family | tasks | output layer | convex | smooth | robust to outliers | Hessian |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in losses():
        out.append(f"| [`{spec.name}`](#{spec.name}) | {spec.family} | {', '.join(spec.tasks)} | {spec.output_layer} | "
                   f"{_yes(spec.convex)} | {_yes(spec.smooth)} | {_yes(spec.robust_to_outliers)} | {_yes(spec.has_hessian)} |")
    for family in FAMILIES:
        out += ["", f"## {family.capitalize()}"]
        for spec in losses(family=family):
            loss = get_loss(spec.name)
            own = inspect.cleandoc(type(loss).__doc__ or "")
            out += [
                "",
                f"### {spec.name}",
                "",
                spec.summary,
                "",
                "```python",
                _signature(spec.name),
                "```",
                "",
                f"$$ {spec.formula_latex} $$",
                "",
                "```text",
                spec.formula_text,
                "```",
                "",
                f"Gradient: $ {spec.gradient_latex} $",
                "",
                "```text",
                spec.gradient_text,
                "```",
            ]
            if spec.hessian_text:
                out += ["", f"Hessian (`ll.{spec.name}.hessian`):", "", "```text", spec.hessian_text, "```"]
            out += [
                "",
                own,
                "",
                f"- **Use it for:** {spec.when_to_use}",
                f"- **Output layer:** {spec.output_layer}",
                "- **Inputs:** " + "; ".join(f"`{k}`: {v}" for k, v in spec.inputs.items()),
                f"- **Properties:** convex in the prediction: {_yes(spec.convex)}; smooth: {_yes(spec.smooth)}; "
                f"lower bound: {spec.lower_bound:g}; robust to outliers: {_yes(spec.robust_to_outliers)}",
            ]
            if spec.options:
                out.append("- **Options:** " + "; ".join(f"`{o.name}` ({o.valid}): {o.description}" for o in spec.options))
            if spec.conventions:
                out.append(f"- **Conventions:** {spec.conventions}")
            out.append("- **Equivalents:** " + "; ".join(f"{k}: `{v}`" for k, v in spec.peers.items()))
            out.append(f"- **nn.Module:** `losslab.torch.{spec.torch_module}`")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m losslab.docs", description="Write the loss reference (docs/losses.md).")
    parser.add_argument("path", nargs="?", default="docs/losses.md", type=Path, help="where to write (default: %(default)s)")
    path = parser.parse_args(sys.argv[1:] if argv is None else argv).path
    text = render()
    try:
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))  # never half a file
    except OSError as err:
        sys.exit(f"error: cannot write {path}: {err.strerror or err}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
