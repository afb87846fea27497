"""Run one named study on the bundled sample and write its table and plot.

Studies: dropout, batch_norm, learning_rate, optimizer, imbalance (see idcclf.studies).
With 2 epochs and 400 patches, the short studies take one to three minutes on a laptop
CPU (dropout, with 6 settings, about four); on the real data use `idcclf study`.

Run: python examples/run_study.py [STUDY] [OUT_DIR]
"""

import sys

from idcclf import load_sample
from idcclf.studies import STUDIES, run_study

name = sys.argv[1] if len(sys.argv) > 1 else "optimizer"
out = sys.argv[2] if len(sys.argv) > 2 else "study-output"
if name not in STUDIES:
    sys.exit(f"unknown study {name!r}; known: {', '.join(STUDIES)}")

data = load_sample(max_per_class=200)
result = run_study(name, data.data, data.target, data.groups, cv=3, epochs=2, refit=False)
print(result.to_markdown())
print(result.summary())
for kind, path in result.save(out).items():
    print(f"{kind}: {path}")
