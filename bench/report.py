"""Check the measured results against the performance targets; write targets.md.

    python bench/report.py
"""

import json

import distribution_head
import family
from harness import RESULTS


def load(name):
    return json.loads((RESULTS / f"{name}.json").read_text())["results"]


def main():
    train, predict, r_side = load("train_step"), load("predict"), load("r_side")
    lines = []

    def target(text, values, limit, met):
        verdict = "met" if met else "NOT met"
        lines.append(f"- {text}: {values} (target {limit}): **{verdict}**.")

    ours = [row for row in train if row["key"] == "ours"]
    tfp_ratios = {row["input"]: row["vs_tfp"] for row in ours}
    det_ratios = {row["input"]: row["vs_deterministic"] for row in ours}
    parity = all(0.95 <= v <= 1.05 for v in tfp_ratios.values())
    lines.append(
        "- Training with `fit()`, ours / TFP: "
        + ", ".join(f"{k} {v:.2f}" for k, v in tfp_ratios.items())
        + (": parity (within 5%)." if parity else ".")
    )
    target("Training with `fit()`, ours / deterministic Keras 3 Conv3D",
           ", ".join(f"{k} {v:.2f}" for k, v in det_ratios.items()), "<= 1.10",
           all(v <= 1.10 for v in det_ratios.values()))
    per_call = [row for row in load("train_on_batch") if row["key"] == "ours"]
    target("Per call (`train_on_batch`), ours / TFP",
           ", ".join(f"{row['input']} {row['vs_tfp']:.2f}" for row in per_call),
           "<= 1.00 at every size", all(row["vs_tfp"] <= 1.0 for row in per_call))
    memory = {row["input"]: (row["peak_memory_mb"],
                             next(r["peak_memory_mb"] for r in train
                                  if r["input"] == row["input"] and r["key"] == "tfp"))
              for row in ours}
    target("Peak memory in `fit()`, ours vs TFP (MB)",
           ", ".join(f"{k} {a:.0f} vs {b:.0f}" for k, (a, b) in memory.items()),
           "ours <= TFP's", all(a <= b for a, b in memory.values()))
    mc = {row["input"]: row["ratio"] for row in predict if row["key"] == "predict_mc"}
    speedups = {k: 1 / v for k, v in mc.items()}
    first = next(iter(speedups))
    target("predict_mc (30 samples) speed-up over the 30-call loop",
           ", ".join(f"{k} {v:.1f}x" for k, v in speedups.items()),
           f">= 2x at {first}, >= 1x elsewhere",
           speedups[first] >= 2 and all(v >= 1 for v in speedups.values()))
    extra = {row["input"]: row["ratio"] for row in predict if row["key"] == "summaries_classifier"}
    target("predict_mc(classifier=True) / predict_mc(), 30 samples, 3-class segmenter",
           ", ".join(f"{k} {v:.2f}" for k, v in extra.items()), "<= 1.10",
           all(v <= 1.10 for v in extra.values()))
    library = next(row for row in r_side if row["measure"] == "library(tfprobr)")
    target("library(tfprobr)", f"{library['median_ms'] / 1000:.3f} s", "<= 0.05 s",
           library["median_ms"] <= 50)
    construct = {row["contender"]: row["median_ms"] for row in r_side
                 if row["measure"].startswith("construct")}
    extra = construct["R"] - construct["Python"]
    target("Constructing a layer from R vs Python",
           f"{construct['R']:.2f} vs {construct['Python']:.2f} ms per call (+{extra:.2f} ms)",
           "<= 1 ms more", extra <= 1.0)
    for row in r_side:
        if row["measure"].startswith("one epoch") and row["contender"] == "R":
            # ratio: median over rounds of (R time / Python time) within a round.
            variant = row["measure"].split(", ", 2)[-1]
            if variant.startswith("benchmark network"):
                target(f"Fit from R / from Python, {variant}", f"{row['ratio']:.3f}", "<= 1.05",
                       row["ratio"] <= 1.05)
            else:
                lines.append(f"- Fit from R / from Python, {variant}: {row['ratio']:.3f} "
                             "(no target: a one-layer network, where converting R's doubles "
                             "weighs most).")
    for text, values, limit, met in family.targets():
        target(text, values, limit, met)
    if (RESULTS / "dense_regression.json").exists():
        # Plain facts, no target: where Keras 3's own per-step cost dominates.
        dense = {row["key"]: row for row in load("dense_regression")}
        ms = {key: f"{row['median_ms']:.2f}" for key, row in dense.items()}
        lines.append(
            f"- Small dense regression network ({dense['ours']['input']}), ms per step in "
            f"`fit()`: ours {ms['ours']}, Flipout {ms['ours_flipout']}, Keras 3 Dense "
            f"{ms['keras3_dense']}, TFP (tf_keras) {ms['tfp']}, tf_keras Dense "
            f"{ms['tf_keras_dense']}: ours / Keras 3 Dense {dense['ours']['vs_keras3_dense']:.2f}; "
            f"Keras 3 Dense / tf_keras Dense {dense['keras3_dense']['vs_tf_keras_dense']:.2f} "
            "(Keras 3's own per-step cost)."
        )
    if (RESULTS / "distribution_head.json").exists():
        for text, values, limit, met in distribution_head.targets():
            target(text, values, limit, met)
        lines.append(distribution_head.facts())
    if (RESULTS / "volume.json").exists():
        volume = {row["key"]: row for row in load("volume")}
        mc = [row for row in volume.values() if row["key"].startswith("time_ours_")]
        target("Whole-volume MC inference / N deterministic sliding-window passes",
               ", ".join(f"N = {row['samples']} {row['ratio']:.2f}" for row in mc), "<= 1.30",
               all(row["ratio"] <= 1.30 for row in mc))
        few, many = volume["memory_ours_10"], volume["memory_ours_100"]
        target("Peak memory of predict_volume, 100 / 10 samples",
               f"{many['median']:.0f} vs {few['median']:.0f} MB, {many['ratio']:.2f}", "<= 1.10",
               many["ratio"] <= 1.10)
        stacked = [row for row in volume.values() if row["part"] == "stacked"]
        template = [row for row in volume.values() if row["part"] == "template"]
        text = ("- Peak memory, stacked samples (N passes kept, numpy mean/std) vs predict_volume: "
                + ", ".join(f"N = {row['samples']} {row['median']:.0f} vs "
                            f"{volume['memory_ours_' + str(row['samples'])]['median']:.0f} MB "
                            f"({row['ratio']:.1f}x)" for row in stacked))
        if template:
            runs = [(row, volume[row["key"].replace("end_to_end", "predict")])
                    for row in template if row["key"].endswith("end_to_end")]
            text += ("; 1 mm MNI template (197x233x189), 30 samples, segment_nifti end to end "
                     "(its predict_volume): "
                     + ", ".join(f"model at {row['spacing_mm']} mm {row['median']:.0f} s "
                                 f"({inner['median']:.0f} s)" for row, inner in runs))
        lines.append(text + ".")
    text = "\n".join(lines)
    (RESULTS / "targets.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
