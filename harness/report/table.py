"""One line per analysed fault, one column per client probe: the downtime table a nightly
note or a closing note quotes (markdown, so it pastes anywhere)."""
from __future__ import annotations


def short_test(test: str) -> str:
    # "harness/scenarios/test_daemon_failures.py::test_service_failure_is_recovered[mysql-stop]"
    # -> "service_failure_is_recovered[mysql-stop]"
    name = test.split("::")[-1]
    return name[5:] if name.startswith("test_") else name


def cell(d: dict | None) -> str:
    if d is None:
        return "-"
    if not d["recovered"]:
        return "never"
    return f"{d['downtime_s']:.2f}"


def rows(doc: dict) -> tuple[list[str], list[list[str]]]:
    probes = sorted({p for s in doc["scenarios"] for r in s["results"] for p in r["downtime"]})
    out = []
    for s in doc["scenarios"]:
        for r in s["results"]:
            vip = next((v for v in r["vip"].values() if v.get("move_s") is not None), None)
            out.append([short_test(s["test"]), f"{r['fault']} {r['target'] or ''}".strip(), s["outcome"] or "?",
                        *(cell(r["downtime"].get(p)) for p in probes),
                        f"{vip['move_s']:.2f}" if vip else "-"])
    return ["scenario", "fault", "outcome", *probes, "VIP move"], out


def markdown(doc: dict) -> str:
    head, body = rows(doc)
    interval = sorted({str(r["probe_interval_s"]) for s in doc["scenarios"] for r in s["results"]})
    lines = [f"downtime per client probe in seconds (probe interval {', '.join(interval) or '?'} s; "
             "'never': not recovered within the target)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)
