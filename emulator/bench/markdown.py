"""A short markdown summary of results.json: machine, command, ratio table and goal verdicts."""

from __future__ import annotations

from pathlib import Path

from emulator.bench.stats import pick, verdict


def _f(value: object, fmt: str = "{:.3g}") -> str:
    return "n/a" if value is None else fmt.format(value)


def ratio_table(results: dict) -> list[str]:
    ratios = results.get("ratios", {})
    ort = {r["batch_jets"]: r for r in pick(results, "inprocess", "onnxruntime") or []}
    lines = ["| micro-batch (jets) | in-process jets per CPU s | service / in-process | pipeline / in-process "
             "(1 enc, 2 enc) | PyTorch eager / in-process |", "|---:|---:|---:|---:|---:|"]
    for size in sorted(ort):
        k = str(size)
        lines.append(f"| {size} | {_f(ort[size].get('jets_per_cpu_s'), '{:,.0f}')} | "
                     f"{_f((ratios.get('service_vs_inprocess') or {}).get(k))} | "
                     f"{_f((ratios.get('pipeline_vs_inprocess') or {}).get(k))}, "
                     f"{_f((ratios.get('pipeline2_vs_inprocess') or {}).get(k))} | "
                     f"{_f((ratios.get('torch_vs_inprocess') or {}).get(k))} |")
    return lines


def goal_table(results: dict) -> list[str]:
    lines = ["| goal | measured | target | measured / target | met |", "|---|---:|---:|---:|:---:|"]
    for name, g in results.get("goals", {}).items():
        lines.append(f"| {name} | {_f(g.get('measured'), '{:.4g}')} | {_f(g.get('goal'), '{:.4g}')} | "
                     f"{_f(g.get('ratio_to_goal'))} | {verdict(g)} |")
    return lines


def breakdown_table(results: dict) -> list[str]:
    rows = results.get("encoder_breakdown") or []
    if not rows:
        return []
    steps = list(rows[0]["us_per_message"])
    lines = ["| events/msg x msgs/batch | jets/batch | " + " | ".join(steps)
             + " | service per message | service per event | non-inference share |",
             "|---|---:|" + "---:|" * len(steps) + "---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['events_per_message']} x {r['messages_per_batch']} | {r['jets_per_batch']:.0f} | "
                     + " | ".join(f"{r['us_per_message'][k]:.0f}" for k in steps)
                     + f" | {_f(r.get('service_us_per_message'), '{:.0f}')} | {_f(r.get('service_us_per_event'))} | "
                     f"{r['non_inference_share']:.2f} |")
    return ["## Encoder message path, CPU microseconds per message (no sockets)", "", *lines, ""]


def markdown(results: dict) -> str:
    m = results.get("machine", {})
    model = results.get("model", {})
    out = [f"# aetrig bench results ({'quick' if results.get('quick') else 'full'})", "",
           f"- command: `{results.get('command')}` at commit {pick(m, 'git', 'commit')} "
           f"(uncommitted changes in the tree: {pick(m, 'git', 'uncommitted_changes')})",
           f"- machine: {m.get('cpu')}, {m.get('cores')} cores, clock {_f(m.get('clock_hz'), '{:.4g}')} Hz "
           f"({m.get('clock_source')}), SIMD {', '.join(m.get('simd', []))}; kernel {m.get('kernel')}",
           f"- cycles: {m.get('cycle_method')}; measured Gemm peak "
           f"{_f(pick(m, 'gemm_peak', 'macs_per_cycle'))} float32 MACs per cycle on one thread",
           f"- load average (1, 5, 15 min) at start {m.get('loadavg_start')}, at end {m.get('loadavg_end')} "
           "(the machine is shared: CPU-normalised figures are the ones to trust)",
           f"- model: {model.get('name')} ({', '.join(model.get('variables', []))}), "
           f"{model.get('macs_per_jet')} MACs per jet",
           f"- libraries: onnxruntime {m.get('onnxruntime')}, torch {m.get('torch')}, pyzmq {m.get('pyzmq')} "
           f"(libzmq {m.get('libzmq')}), numpy {m.get('numpy')}; runtime {_f(results.get('runtime_s'), '{:.0f}')} s",
           "", "## Ratios", "", *ratio_table(results), "", "## Goals", "", *goal_table(results), "",
           *breakdown_table(results)]
    if results.get("errors"):
        out += ["## Errors", "", *[f"- {e['step']}: {e['error']}" for e in results["errors"]], ""]
    if results.get("skipped"):
        out += ["## Skipped (deadline)", "", *[f"- {s}" for s in results["skipped"]], ""]
    return "\n".join(out)


def write_markdown(results: dict, out: Path) -> Path:
    path = out / "SUMMARY.md"
    path.write_text(markdown(results))
    return path
