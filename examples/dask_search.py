"""Run a study's grid search on a Dask cluster (here a local one with 2 processes).

The fits go to the Dask workers through joblib's "dask" backend; the result is the
same kind as a local run. TFThreadsPlugin limits TensorFlow to one thread per worker so
that the workers share the cores instead of each spawning a pool as large as the
machine. For a real cluster, pass its scheduler address to Client instead.

Needs the extra: pip install 'idcclf[dask]'
Run: python examples/dask_search.py   (about a minute on a 2-core CPU)
"""

import joblib
from distributed import Client, LocalCluster

from idcclf import load_sample
from idcclf._threads import TFThreadsPlugin
from idcclf.studies import run_study

if __name__ == "__main__":  # worker processes re-import this file
    data = load_sample(max_per_class=100)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(TFThreadsPlugin(1))
        print(f"dashboard: {client.dashboard_link}")
        with joblib.parallel_backend("dask"):
            result = run_study(
                "batch_norm",
                data.data,
                data.target,
                data.groups,
                cv=2,
                epochs=1,
                n_jobs=-1,
            )
    print(result.to_markdown())
    print(f"best setting: {result.search.best_params_}")
