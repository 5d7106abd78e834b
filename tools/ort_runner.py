"""ONNX Runtime side of `tacoc bench --runtime ort` (compiler/bench_ort.c starts it).

Usage: ort_runner.py --out DIR --warmup W (--iters N | --time S) [--threads T]
                     [--batch B --batch-input NAME ...] --input NAME FILE.npy ... -- MODEL ...

Runs every MODEL in ONNX Runtime (CPU) on the same inputs, the way tacoc bench
runs libtacort: after one unmeasured session and run per
model (one-time costs), per model the session is created and warmed up (W untimed runs,
at least one, whose first outputs are saved) with the growth of the process's
peak RSS measured around that (VmHWM, reset through /proc/self/clear_refs);
then the timed runs go round-robin, one run of each model per round, the
model that starts a round rotating, each run timed alone around
InferenceSession.run with a monotonic clock.

--batch B with --batch-input NAME: a model that declares a fixed dim 0 other
than B for input NAME gets that dim made symbolic before the session is created.

Writes DIR/result.txt (one record per line):
    tacoc-ort-runner 1
    onnxruntime VERSION
    peak K BYTES                 (-1 when it cannot be measured)
    output K J NAME              (model K's output J, saved as DIR/mK_oJ.npy)
    latency K MS MS ...          (model K's timed runs in run order)
On failure prints one line `ort_runner: error: ...` on stderr and exits 2.
"""
import argparse
import ctypes
import gc
import os
import sys
import time


def fail(msg):
    print(f"ort_runner: error: {msg}", file=sys.stderr)
    sys.exit(2)


def status_bytes(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return -1


def reset_peak():
    """Gives freed heap back, then resets VmHWM to the current RSS. True if it could."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def model_source(path, batch, batch_inputs):
    """The path, or the serialized model with fixed batch dims made symbolic."""
    if batch is None or not batch_inputs:
        return path
    import onnx
    proto = onnx.load(path, load_external_data=False)
    changed = False
    for vi in proto.graph.input:
        if vi.name not in batch_inputs or not vi.type.HasField("tensor_type"):
            continue
        dims = vi.type.tensor_type.shape.dim
        if len(dims) and dims[0].HasField("dim_value") and dims[0].dim_value not in (batch, -1):
            dims[0].Clear()
            dims[0].dim_param = "batch"
            changed = True
    if not changed:
        return path
    from onnx.external_data_helper import load_external_data_for_model
    load_external_data_for_model(proto, os.path.dirname(os.path.abspath(path)))
    return proto.SerializeToString()


def main():
    ap = argparse.ArgumentParser(description="ONNX Runtime runner for tacoc bench")
    ap.add_argument("--out", required=True)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int)
    ap.add_argument("--time", type=float)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--batch-input", action="append", default=[])
    ap.add_argument("--input", nargs=2, action="append", default=[], metavar=("NAME", "FILE"))
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    if (a.iters is None) == (a.time is None):
        fail("give either --iters or --time")
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        fail(f"ONNX Runtime is not installed for {sys.executable} ({e}); run 'make deps'")
    ort.set_default_logger_severity(3)

    feeds = {}
    for name, file in a.input:
        try:
            feeds[name] = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as e:
            fail(f"{file}: {e}")

    def session(path, warmup):
        """A session for path and the outputs of its first run, after warmup runs in all."""
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if a.threads:
            opts.intra_op_num_threads = a.threads
        try:
            sess = ort.InferenceSession(model_source(path, a.batch, set(a.batch_input)), opts,
                                        providers=["CPUExecutionProvider"])
            first = sess.run(None, feeds)
            for _ in range(warmup - 1):
                sess.run(None, feeds)
        except Exception as e:  # ORT raises its own exception types; one line for tacoc
            msg = str(e).strip().splitlines()
            fail(f"{path}: {msg[0] if msg else type(e).__name__}")
        return sess, first

    # One unmeasured session per model first, so that process-wide one-time
    # costs are not charged to whichever model is measured first.
    for path in a.models:
        session(path, 1)
    sessions, peaks, outputs = [], [], []
    for k, path in enumerate(a.models):
        base = status_bytes("VmRSS")
        can_reset = reset_peak()
        base = status_bytes("VmRSS") if can_reset else base
        sess, first = session(path, a.warmup)
        peak = status_bytes("VmHWM")
        peaks.append(max(0, peak - base) if can_reset and peak >= 0 and base >= 0 else -1)
        names = [o.name for o in sess.get_outputs()]
        for j, value in enumerate(first):
            if not isinstance(value, np.ndarray):
                fail(f"{path}: output '{names[j]}' is not a tensor")
            np.save(os.path.join(a.out, f"m{k}_o{j}.npy"), value)
        outputs.append(names)
        sessions.append(sess)

    n = len(sessions)
    lat = [[] for _ in range(n)]
    start = time.monotonic()
    r = 0
    while (r < a.iters) if a.iters is not None else (time.monotonic() - start < a.time):
        for j in range(n):
            k = (r + j) % n
            t0 = time.perf_counter_ns()
            sessions[k].run(None, feeds)
            lat[k].append((time.perf_counter_ns() - t0) / 1e6)
        r += 1

    with open(os.path.join(a.out, "result.txt"), "w") as f:
        f.write("tacoc-ort-runner 1\n")
        f.write(f"onnxruntime {ort.__version__}\n")
        for k in range(n):
            f.write(f"peak {k} {peaks[k]}\n")
            for j, name in enumerate(outputs[k]):
                f.write(f"output {k} {j} {name}\n")
            f.write(f"latency {k} " + " ".join(f"{v:.6f}" for v in lat[k]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
