"""Audio feature extraction in libtacort and ONNX Runtime: a Whisper-style
log-mel front end (30 s of 16 kHz audio; HannWindow(400), STFT with frame
400 and hop 160, one-sided; power spectrum; MelWeightMatrix(80 bins,
0-8 kHz); log of the clamped mel energies), built from standard ONNX ops
(opset 17), run by `tacoc bench --runtime tacort,ort` (interleaved runs,
medians, peak memory, outputs compared).

Usage: bench/audio_compare.py [--tacoc build/bin/tacoc] [--workdir build/bench]
                              [--threads 1] [--iters 20] [--seconds 30]"""
import argparse
import os
import subprocess

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def logmel_model(samples):
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)  # noqa: E731
    f32 = lambda name, v: numpy_helper.from_array(np.array(v, np.float32), name)  # noqa: E731
    nodes = [
        helper.make_node("HannWindow", ["n_fft"], ["win"], periodic=1),
        helper.make_node("Unsqueeze", ["audio", "last"], ["sig"]),
        helper.make_node("STFT", ["sig", "hop", "win", "n_fft"], ["spec"], onesided=1),
        helper.make_node("Mul", ["spec", "spec"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "last"], ["power"], keepdims=0),
        helper.make_node("MelWeightMatrix", ["n_mels", "n_fft", "rate", "f_lo", "f_hi"], ["mel"]),
        helper.make_node("MatMul", ["power", "mel"], ["energy"]),
        helper.make_node("Clip", ["energy", "floor"], ["clamped"]),
        helper.make_node("Log", ["clamped"], ["logmel"]),
    ]
    inits = [i64("n_fft", 400), i64("last", [-1]), i64("hop", 160), i64("n_mels", 80),
             i64("rate", 16000), f32("f_lo", 0.0), f32("f_hi", 8000.0), f32("floor", 1e-10)]
    g = helper.make_graph(nodes, "logmel",
                          [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, samples])],
                          [helper.make_tensor_value_info("logmel", TensorProto.FLOAT,
                                                         [1, None, 80])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tacoc", default="build/bin/tacoc")
    ap.add_argument("--workdir", default="build/bench")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=30)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    samples = 16000 * a.seconds
    path = os.path.join(a.workdir, "logmel.onnx")
    onnx.save(logmel_model(samples), path)
    audio = os.path.join(a.workdir, "logmel_audio.npy")
    t = np.arange(samples) / 16000.0
    sig = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.RandomState(0).randn(samples)
    np.save(audio, sig.astype(np.float32)[None, :])
    subprocess.run([a.tacoc, "bench", path, "--runtime", "tacort,ort", "--threads",
                    str(a.threads), "--iters", str(a.iters), "--input", f"audio={audio}"],
                   check=True)


if __name__ == "__main__":
    main()
