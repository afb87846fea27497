"""Small real IDC trees for tests: copies of files of the bundled sample."""

import shutil

from idcclf.datasets import sample_path


def make_sample_tree(root, n_patients=6, per_class=4):
    """Copy ``per_class`` patches of each class of the first ``n_patients`` patients."""
    src = sample_path()
    for patient in sorted(p.name for p in src.iterdir() if p.is_dir())[:n_patients]:
        for label in ("0", "1"):
            folder = root / patient / label
            folder.mkdir(parents=True)
            for path in sorted((src / patient / label).glob("*.png"))[:per_class]:
                shutil.copy2(path, folder / path.name)
    return root
