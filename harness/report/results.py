"""results.json, schema version 1: run metadata plus, per scenario, its fault
schedule, figures and verdict, and the path of the raw history they came from.

The schema is `results.schema.json` next to this module, documented in
docs/results-schema.md. Every figure is `Scenario.analyse()`'s, and `window`
records the analysis window that reproduces it from the history (see recheck).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from importlib import resources
from pathlib import Path

from ..history import History
from . import recheck

SCHEMA_VERSION = 1
RUN_KEYS = ("topology", "backend", "run_id", "seed", "started_wall", "finished_wall", "exit_status",
            "junit", "timings", "packages", "packages_node", "resource_agents", "host", "fact_errors", "resets",
            "agent_gate")


class ResultsError(ValueError):
    """Unusable results input; str() is one line naming the file and the problem."""


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def harness_version() -> str:
    try:
        from importlib.metadata import version
        return version("ha-harness")
    except Exception:       # running from a source tree that was never installed
        return "unknown"


# ---------------------------------------------------------------- building

def run_info(**fields) -> dict:
    """The `run` object: every key present (null when unknown), in schema order."""
    unknown = set(fields) - set(RUN_KEYS)
    if unknown:
        raise ValueError(f"unknown run fields: {sorted(unknown)}")
    run = {k: fields.get(k) for k in RUN_KEYS}
    run["resource_agents"] = run["resource_agents"] or []
    run["fact_errors"] = run["fact_errors"] or []
    run["resets"] = run["resets"] or []
    if not run["agent_gate"]:          # only runs with patched agents have a gate
        del run["agent_gate"]
    return run


def with_window(history: History, result: dict) -> dict:
    return {**result, "window": recheck.infer_window(history, result)}


def scenario_entry(test: str, history_path: Path | None, results: list, out_dir: Path,
                   outcome: dict | None = None) -> dict:
    outcome = outcome or {}
    entry = {"test": test, "outcome": outcome.get("outcome"), "duration_s": outcome.get("duration_s"),
             "message": outcome.get("message"), "history": None, "history_sha256": None,
             "t0_wall": None, "probe_interval_s": None, "probes": [], "schedule": [], "results": []}
    if history_path is None:
        return entry
    history = History.load(history_path)
    interval = history.meta.get("probe_interval_s")
    entry.update(history=Path(os.path.relpath(history_path, out_dir)).as_posix(),
                 history_sha256=sha256_file(history_path), t0_wall=history.t0_wall,
                 probe_interval_s=interval if interval is not None else _interval(results),
                 probes=history.meta.get("probes", []), schedule=history.fault_windows(),
                 results=[with_window(history, r) for r in results])
    return entry


def _interval(results: list) -> float | None:
    return results[0].get("probe_interval_s") if results else None


def build(run: dict, entries: list[dict], out_dir: str | Path, outcomes: dict | None = None) -> dict:
    """The results document. `entries` are the plugin's {"test", "history", "results"};
    `outcomes` maps test ids to {"outcome", "duration_s", "message"} and adds the
    scenarios that left no history (skipped, or failed before the scenario began)."""
    out_dir, outcomes = Path(out_dir), outcomes or {}
    scenarios = [{**scenario_entry(e["test"], Path(e["history"]) if e.get("history") else None,
                                   e.get("results", []), out_dir, outcomes.get(e["test"])),
                  "phases": e.get("phases")} for e in entries]
    seen = {s["test"] for s in scenarios}
    scenarios += [scenario_entry(t, None, [], out_dir, o) for t, o in outcomes.items() if t not in seen]
    return {"schema_version": SCHEMA_VERSION, "generated_by": f"ha-harness {harness_version()}",
            "generated_wall": round(time.time(), 3), "run": run, "scenarios": scenarios}


def write(doc: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


# ---------------------------------------------------------------- reading

def schema() -> dict:
    return json.loads(resources.files(__package__).joinpath("results.schema.json").read_text())


def validate(doc, source: str = "results") -> dict:
    """Raise ResultsError naming the first problem; return the document."""
    import jsonschema
    if not isinstance(doc, dict):
        raise ResultsError(f"{source}: not a results document (top level is a JSON {type(doc).__name__})")
    if "schema_version" not in doc:
        raise ResultsError(f"{source}: no schema_version (written before schema {SCHEMA_VERSION}; "
                           f"convert it with `python -m harness report upgrade {source}`)")
    if doc["schema_version"] != SCHEMA_VERSION:
        raise ResultsError(f"{source}: schema_version {doc['schema_version']!r} is not supported "
                           f"(this harness reads {SCHEMA_VERSION})")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise ResultsError(f"{source}: invalid at {where}: {error.message}")
    return doc


def read_json(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not JSON (not even text)") from None
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not JSON (line {e.lineno} column {e.colno}: {e.msg})") from None


def load(path: str | Path) -> dict:
    return validate(read_json(path), str(path))


def history_path(results_path: str | Path, scenario: dict) -> Path | None:
    """Histories are stored relative to the results file, so a run directory can move."""
    if not scenario.get("history"):
        return None
    return Path(results_path).parent / scenario["history"]


def load_history(results_path: str | Path, scenario: dict) -> History | None:
    path = history_path(results_path, scenario)
    if path is None:
        return None
    if not path.is_file():
        raise ResultsError(f"{path}: history of {scenario['test']} is missing")
    return History.load(path)


# ---------------------------------------------------------------- upgrading

def upgrade(legacy_path: str | Path, out_path: str | Path) -> dict:
    """Schema-1 document from a results.json written before schema versions
    (plugin payload {"topology", "run_id", "timings", "scenarios"}) and its histories."""
    legacy_path, out_dir = Path(legacy_path), Path(out_path).parent
    doc = read_json(legacy_path)
    if not isinstance(doc, dict) or "scenarios" not in doc:
        raise ResultsError(f"{legacy_path}: not a harness results file (no scenarios)")
    if "schema_version" in doc:
        raise ResultsError(f"{legacy_path}: already has schema_version {doc['schema_version']!r}")
    entries = [{**e, "history": str(_find_legacy_history(legacy_path, e))} for e in doc["scenarios"]]
    starts = [History.load(e["history"]).t0_wall for e in entries]
    run = run_info(topology=doc.get("topology"), run_id=doc.get("run_id"), timings=doc.get("timings"),
                   started_wall=min(starts) if starts else None,
                   fact_errors=["upgraded from a results.json without schema_version: "
                                "packages, agent checksums and host facts were not recorded"])
    return build(run, entries, out_dir)


def _find_legacy_history(legacy_path: Path, entry: dict) -> Path:
    # Old files name histories relative to the run's working directory; the copy
    # beside the results file comes first so a moved run directory stays whole.
    recorded = Path(entry["history"])
    for candidate in (legacy_path.parent / "histories" / recorded.name, recorded):
        if candidate.is_file():
            return candidate
    raise ResultsError(f"{legacy_path}: history {recorded} of {entry['test']} not found")
