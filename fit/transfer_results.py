"""The result of a transfer evaluation (demogen_fit.transfer.evaluate) as an object: the JSON
report it holds (`report`, also read by key: `results["candidates"]`), the text `demogen
evaluate` prints (`summary()`) and the JSON file it writes (`to_json()`)."""

import dataclasses
import json

import pandas as pd


def _frame(title, rows):
    frame = pd.DataFrame(rows)
    return f"\n{title}\n" + frame.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def _means_row(name, mean, extra=None):
    return {"candidate": name, "CMI": mean["cmi"], "+-": mean["cmi_se"],
            "tau": mean["kendall_tau"], "tau +-": mean["kendall_tau_se"],
            "fitted-only tau": mean["fitted_only"]["kendall_tau"],
            "Psi": mean["granulated_psi"], "failed": len(mean["failed_tasks"]),
            "> null": mean["above_null"], **(extra or {})}


def _versus(entry):
    return {f"{key} vs {reference}": entry.get(f"vs_{reference}", {}).get(field)
            for reference in ("paper", "winner")
            for key, field in (("CMI", "cmi_difference"), ("tau", "tau_difference"))}


@dataclasses.dataclass
class _Report:
    report: dict

    def __getitem__(self, key):
        return self.report[key]

    def to_json(self, path=None):
        """The report as JSON text; written to `path` (atomically) when given."""
        text = json.dumps(self.report, indent=1) + "\n"
        if path is not None:
            from demogen.competition.pgdl import atomic_path

            with atomic_path(path) as tmp:
                with open(tmp, "w", encoding="utf-8") as handle:
                    handle.write(text)
        return text



class TransferResults(_Report):
    """The report of one transfer evaluation; see `demogen evaluate --help` for its keys."""

    def summary(self):
        """The text `demogen evaluate` prints: per view the candidates' means and the nested
        score, CMI per held-out task beside its null and ceiling, Simpson's view, the
        selection."""
        report = self.report
        boxed = report["lockbox"]
        lines = [f"transfer over {len(report['tasks'])} tasks"
                 + (f" (lockbox tasks {', '.join(boxed['tasks'])} left out; --lockbox adds them)"
                    if boxed["tasks"] and not boxed["included"] else "")]
        lines += [f"  skipped {name}: {reason}"
                  for name, reason in {**report["skipped"], **report["skipped_views"]}.items()]
        lines += [f"  left out {task}: its grid is incomplete ({reason})"
                  for task, reason in report["incomplete_tasks"].items()]
        for view, result in report["views"].items():
            rows = [_means_row(name, entry["mean"], _versus(entry))
                    for name, entry in result["candidates"].items()]
            rows.append(_means_row("nested (chosen inside)", result["nested"]["mean"]))
            lines.append(_frame(f"leave-one-{view}-out ({len(result['units'])} units), means "
                                f"over tasks (an undefined score counts as 0); fitted-only: "
                                f"tau among the models with train accuracy >= 0.99; "
                                f"selected: {result['selected']}", rows))
        per_task = pd.DataFrame({name: {t: s["cmi"] for t, s in entry["tasks"].items()}
                                 for name, entry in report["candidates"].items()})
        for column, key in (("null 95%", "cmi_null_95"), ("ceiling", "noise_ceiling_cmi")):
            per_task[column] = [report["tasks"][t][key] for t in per_task.index]
        lines.append(_frame("CMI x 100 per held-out task (leave-one-task-out); null 95%: the "
                            "95th percentile under 200 within-task shuffles; ceiling: the gaps "
                            "against gaps re-measured on bootstrap resamples of the test set "
                            "(needs side files)", per_task.rename_axis("task").reset_index()))
        lines.append(_frame(
            "Simpson's view: Kendall tau with the gap pooled over tasks, within each task and "
            "within each depth of the depth-varying tasks; flips: the partitions whose sign is "
            "opposite to the pooled one",
            [{"score": name, "pooled tau": v["pooled"],
              "within tasks (mean)": pd.Series(v["within_tasks"], dtype=float).mean(),
              "within depths (mean)": pd.Series(v["within_depth"], dtype=float).mean(),
              "flips": ", ".join(v["flips"]) or "-"} for name, v in report["simpson"].items()]))
        lines.append(f"\nselected (leave-one-{report['selection_view']}-out, the simplest within "
                     f"one standard error of the best mean Kendall tau): {report['selected']}")
        lines.append("CMI x 100: the competition's score, 0 (no information on the gap's order "
                     "beyond the hyperparameters) to 100; tau: Kendall's rank correlation, -1 to "
                     "1; Psi: tau within groups that differ in one hyperparameter.")
        return "\n".join(lines)


class FinalResults(_Report):
    """The report of the one final run (demogen_fit.transfer.final_run): per candidate its
    scores on each final task, fitted on all the training tasks; the selection per registry
    version; each final task's null and ceiling."""

    def summary(self):
        """The text `demogen evaluate --final` prints."""
        report = self.report
        tasks = report["final_tasks"]
        rows = [_means_row(name, entry["mean"], {
            **{f"tau {t}": entry["tasks"][t]["kendall_tau"] for t in tasks}, **_versus(entry)})
            for name, entry in report["candidates"].items()]
        selected = ", ".join(f"{version}: {name}" for version, name in report["selected"].items())
        lines = [f"the final run: fitted on {len(report['training_tasks'])} tasks, scored on the "
                 f"final lockbox ({', '.join(tasks)})",
                 _frame("means over the final tasks (an undefined score counts as 0)", rows),
                 _frame("the final tasks", [{"task": t, "models": info["n_grid"],
                                             "null 95%": info["cmi_null_95"],
                                             "ceiling": info["noise_ceiling_cmi"]}
                                            for t, info in tasks.items()]),
                 f"\nselected on the training tasks (leave-one-cluster-out), per registry "
                 f"version: {selected}"]
        for version, name in report["selected"].items():
            entry = report["candidates"][name]
            lines.append(f"  {version} {name}: CMI {entry['mean']['cmi']:.1f}, tau "
                         f"{entry['mean']['kendall_tau']:.3f}, per task "
                         + ", ".join(f"{t} {entry['tasks'][t]['kendall_tau'] or 0:.3f}"
                                     for t in tasks))
        return "\n".join(lines)
