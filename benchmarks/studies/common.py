"""What the hypothesis studies' reports share: their rows from the harness's store (one
per cell of ``benchmarks/specs/<study>.toml``), with the fields the tables group by
read from the task name (``<dataset>/<variant>``) and the cell's settings, and the
sections every report has. The runs themselves are ``dvrl bench`` cells."""

from __future__ import annotations

from pathlib import Path

from dvrl_env.bench.tables import cell, group, parsed, span

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
