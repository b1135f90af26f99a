"""Shared benchmark machinery: interleaved rounds, summaries, machine record, output.

Contenders of one comparison run in one process, round by round, in an order
that rotates each round, after a warm-up, so that drift on a shared machine
hits them alike. Results go to bench/results/<name>.json and <name>.md.
"""

import json
import os
import pathlib
import platform
import statistics
import threading
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def interleave(contenders, rounds, warmup=1):
    """Time each zero-argument callable ``rounds`` times, interleaved.

    A callable that returns a float reports the seconds to record (timed on
    its own, e.g. inside R); for any other return value the wall time of the
    call is recorded. Returns {name: [seconds per round]}.
    """
    names = list(contenders)
    for name in names:
        for _ in range(warmup):
            contenders[name]()
    timings = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            measured = contenders[name]()
            elapsed = time.perf_counter() - started
            timings[name].append(measured if isinstance(measured, float) else elapsed)
    return timings


def paired_ratio(values, reference):
    """Median over rounds of value / reference within the round.

    Contenders of a round run back to back, so drift between rounds cancels;
    on a shared machine this is steadier than a ratio of medians.
    """
    return statistics.median(v / r for v, r in zip(values, reference))


def summarise(values, scale=1e3):
    """Median, min and max (in milliseconds by default) of a list of seconds."""
    return {
        "median": statistics.median(values) * scale,
        "min": min(values) * scale,
        "max": max(values) * scale,
        "rounds": len(values),
    }


def machine():
    """CPU, cores, versions and threading: recorded with every result."""
    import keras
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras

    cpu = "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf_keras": tf_keras.__version__,
        "tensorflow_probability": tfp.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default",
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or "default",
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }


def markdown(rows, columns):
    """A Markdown table of ``rows`` (dicts) with ``columns`` [(key, header, format)]."""
    lines = [
        "| " + " | ".join(header for _, header, _ in columns) + " |",
        "| " + " | ".join("---" if fmt is None else "---:" for _, _, fmt in columns) + " |",
    ]
    for row in rows:
        cells = [
            str(row[key]) if fmt is None else format(row[key], fmt) for key, _, fmt in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(name, rows, columns, notes=""):
    """Write bench/results/<name>.json and <name>.md; print the table."""
    RESULTS.mkdir(exist_ok=True)
    record = {"benchmark": name, "machine": machine(), "results": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    info = record["machine"]
    header = (
        f"{info['date']}, {info['cpu']}, {info['cores']} cores, TF {info['tensorflow']}, "
        f"Keras {info['keras']}, tf_keras {info['tf_keras']}, TFP "
        f"{info['tensorflow_probability']}"
    )
    table = markdown(rows, columns)
    (RESULTS / f"{name}.md").write_text(f"{header}\n\n{table}\n" + (f"\n{notes}\n" if notes else ""))
    print(f"{name}: {header}\n{table}")
    return record


def current_rss_mb():
    """This process's resident set size now, in MB (Linux)."""
    pages = int(pathlib.Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """Peak RSS growth over a block, sampled every 2 ms by a thread.

    ``ru_maxrss`` cannot be used: importing TensorFlow peaks higher than
    training a small model, so the lifetime maximum hides the block's peak.
    """

    def __enter__(self):
        self.baseline = current_rss_mb()
        self.peak = self.baseline
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, current_rss_mb())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, current_rss_mb())
        self.growth_mb = self.peak - self.baseline
        return False
