"""What the hypothesis studies' reports share: their rows from the harness's store (one
per cell of ``benchmarks/specs/<study>.toml``), with the fields the tables group by
read from the task name (``<dataset>/<variant>``) and the cell's settings, and the
sections every report has. The runs themselves are ``dvrl bench`` cells."""

from __future__ import annotations

from pathlib import Path

from dvrl_env.app.bench.tables import cell, group, markdown_table, paired, parsed, span

RESULTS = Path(__file__).resolve().parents[1] / "results" / "studies"


def study_rows(rows: list[dict]) -> list[dict]:
    """The finished rows with ``dataset`` (the task name's part before ``/``) and the
    env's ``marginal_info`` (on/off) added."""
    out = parsed(rows)
    for r in out:
        r["dataset"] = r["task"].split("/")[0]
        r["marginal_info"] = "off" if r["env_options"].get("marginal_information") is False \
            else "on"
    return out


def outcome_cells(runs: list[dict]) -> list[str]:
    """The last columns of every study table: gap, robust acc and seconds per run."""
    return [cell((r["gap"] for r in runs), signed=True), cell(r["robust_acc"] for r in runs),
            f"{sum(r['seconds'] for r in runs) / len(runs):.0f}"]


def fits_cell(runs: list[dict]) -> str:
    return span(runs, "fits")


def settings_section(rows: list[dict], out: Path) -> str:
    total = sum(r["seconds"] for r in rows)
    seeds = sorted({r["seed"] for r in rows})
    options = sorted({str(r["env_options"]) for r in rows})
    return (f"Command: `dvrl bench {out}/spec.toml --out {out} --resume` re-renders this "
            f"from the store, `{out}/results.csv`. Seeds {seeds} (data split, label noise "
            f"and agent seed); noise rate {rows[0]['noise_rate'] if rows else 'n/a'}; "
            f"{len(rows)} cells, {total / 60:.1f} min of run time in all; env options "
            f"{'; '.join(options)}. Cells: mean ± half-width of the 95% Student-t interval "
            "over seeds. AUROC: detection of flipped labels by low values; gap: mean value "
            "of clean minus corrupted points; robust acc: test accuracy of logistic "
            "regression trained with the values as sample weights.")


def reference_accuracies(rows: list[dict], key: str = "dataset") -> str:
    """What robust acc compares with: the same model unweighted, and on clean labels."""
    lines = [f"- {name[0]}: unweighted on the noisy labels "
             f"{cell(r['unweighted_acc'] for r in runs)}, on the clean labels "
             f"{cell(r['clean_acc'] for r in runs)}"
             for name, runs in group(rows, [key]).items()]
    return "Robust-learning reference (test accuracy, logistic regression):\n" + "\n".join(lines)


def stem(out: Path) -> Path:
    """Where a report's files go: ``<out>/<out's name>`` (``.md``, ``_<figure>.png``)."""
    return Path(out) / Path(out).name


def paired_table(rows: list[dict], variant: str, reference, keys: list[str],
                 headers: list[str]) -> str:
    """One line per (dataset, agent, ``variant``): AUROC, and its per-seed difference to
    the rows where ``reference(row)`` holds, matched on ``keys`` and the seed ("-" for
    the reference itself); ``headers`` name the dataset, variant and difference columns."""
    ref = {(*[r[k] for k in keys], r["seed"]): r["auroc"] for r in rows if reference(r)}
    body = []
    for (dataset, label, value), runs in group(rows, ["dataset", "agent", variant]).items():
        diff = "-" if reference(runs[0]) else cell(paired(runs, ref, keys), signed=True)
        body.append([dataset, label, value, int(runs[0]["updates"]), fits_cell(runs),
                     len(runs), cell(r["auroc"] for r in runs), diff, *outcome_cells(runs)])
    first, middle, last = headers
    return markdown_table([first, "agent", middle, "updates", "fits", "seeds", "AUROC", last,
                           "gap", "robust acc", "s / run"], body)


def curve_figures(rows: list[dict], line_key: str, out: Path, what: str) -> list[Path]:
    """One learning-curve figure per dataset, a line per ``line_key`` value and agent."""
    from benchmarks.studies import figures

    base = stem(out)
    paths = []
    for (dataset,), runs in group(rows, ["dataset"]).items():
        path = base.parent / f"{base.name}_curves_{dataset}.png"
        figures.plot_curves(runs, [line_key], "agent", path,
                            f"{dataset}: detection AUROC while learning, {what} (mean over "
                            "seeds, band: min-max)")
        paths.append(path)
    return paths
