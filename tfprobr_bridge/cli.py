"""``tfprobr-segment``: segment NIfTI scans with a Bayesian model from the shell.

    tfprobr-segment model.keras scan.nii.gz [more scans or folders] --output-dir out/

The same options as ``segment_nifti()`` in Python and R. The exit status is 0
when every scan was segmented, 1 when one failed (the others still run), 2
for a bad command line and 130 after an interrupt (Ctrl-C), which leaves
every output either whole or not written.
"""

import argparse
import json
import os
import sys


def _parser():
    parser = argparse.ArgumentParser(
        prog="tfprobr-segment",
        description="Labels, probabilities and Monte Carlo uncertainty maps for NIfTI scans, "
        "in each scan's own space, with a JSON summary of each class's volume and its interval.",
    )
    parser.add_argument("model", help="a .keras file (saved with save_segmenter() to carry its "
                        "preprocessing)")
    parser.add_argument("inputs", nargs="+", help="NIfTI files (.nii, .nii.gz) or folders of them")
    parser.add_argument("-o", "--output-dir", required=True, help="where the outputs go")
    parser.add_argument("-n", "--n-samples", type=int, default=30, help="Monte Carlo draws (30)")
    parser.add_argument("--overlap", type=float, default=0.5, help="window overlap in [0, 1) (0.5)")
    parser.add_argument("--blend", choices=("gaussian", "constant"), default="gaussian")
    parser.add_argument("--patch-size", type=int, nargs="+", default=None,
                        help="window size, one or three integers (default: the model's input)")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per step (4)")
    parser.add_argument("--seed", type=int, default=None, help="fixes every draw")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    parser.add_argument("--from-logits", action="store_true",
                        help="the model's outputs are logits")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress")
    return parser


def main(argv=None):
    arguments = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from tfprobr_bridge.uncertainty.nifti import segment_nifti

        results = segment_nifti(
            arguments.model, arguments.inputs, arguments.output_dir,
            n_samples=arguments.n_samples, patch_size=arguments.patch_size,
            overlap=arguments.overlap, blend=arguments.blend, batch_size=arguments.batch_size,
            seed=arguments.seed, verbose=0 if arguments.quiet else "auto",
            overwrite=arguments.overwrite, from_logits=arguments.from_logits,
        )
    except KeyboardInterrupt:
        print("tfprobr-segment: interrupted; the outputs written so far are whole, the rest "
              "were not written", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        print(f"tfprobr-segment: {error}", file=sys.stderr)
        return 2
    failed = 0
    for result in results:
        if result["status"] == "done":
            classes = result["summary"]["classes"]
            volumes = ", ".join(f"{name} {c['volume_ml']:.1f} mL "
                                f"[{c['interval_ml'][0]:.1f}, {c['interval_ml'][1]:.1f}]"
                                for name, c in classes.items())
            print(f"{result['input']}: {volumes}")
        else:
            failed += 1
            print(f"{result['input']}: FAILED: {result['error']}", file=sys.stderr)
    print(json.dumps({"done": len(results) - failed, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
