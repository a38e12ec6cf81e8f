"""Largest error of the PWL tanh tables, measured on every input code.

Issue 3 figures: 8 segments (NeuFlow) printed; 16 segments at most 2^-8.

    .venv/bin/python bench/bench_pwl.py
"""

from convc.compiler.numeric import QFormat
from convc.compiler.pwl_fit import make_tanh

CASES = [
    ("Q8.8 -> Q8.8 (NeuFlow)", QFormat(16, 8), QFormat(16, 8)),
    ("Q5.11 -> Q2.14 (LeNet conv output -> tanh)", QFormat(16, 11), QFormat(16, 14)),
    ("Q8.8 -> Q2.14", QFormat(16, 8), QFormat(16, 14)),
]


def main():
    for label, fin, fout in CASES:
        for segments in (8, 16):
            _, err = make_tanh(segments, fin, fout)
            print(f"tanh {segments:2d} segments, {label:<44} max error {err:.3e} = {err * 256:.3f} x 2^-8"
                  f"{'  (<= 2^-8)' if err <= 2 ** -8 else ''}")


if __name__ == "__main__":
    main()
