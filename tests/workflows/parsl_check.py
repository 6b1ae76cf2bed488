"""Parsl's HighThroughputExecutor with its workers in a container: the
WrappedLauncher puts `apptainer exec IMAGE` in front of the worker pool, so
bash_apps run inside the image.

    python3 parsl_check.py IMAGE.sif OUT_DIR

The worker pool is this venv's script: PATH inside the container gets the
venv's bin through APPTAINERENV_PREPEND_PATH, and the venv and OUT_DIR are
bound with APPTAINER_BIND (set in the worker's init, as a user would).
"""
import os
import sys

import parsl
from parsl.app.app import bash_app
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import WrappedLauncher
from parsl.providers import LocalProvider

image, out = sys.argv[1], os.path.abspath(sys.argv[2])
os.makedirs(out, exist_ok=True)
venv_bin = os.path.dirname(sys.executable)
config = Config(
    executors=[
        HighThroughputExecutor(
            label="apptainer_htex",
            address="127.0.0.1",
            max_workers_per_node=1,
            provider=LocalProvider(
                launcher=WrappedLauncher(prepend=f"apptainer exec {image}"),
                init_blocks=1,
                max_blocks=1,
                worker_init=f"export APPTAINERENV_PREPEND_PATH={venv_bin} APPTAINER_BIND={sys.prefix},{out}",
            ),
        )
    ],
    run_dir=os.path.join(out, "runinfo"),
)


@bash_app
def in_container(n, stdout=None, stderr=None):
    return f'echo "app={n} debian=$(cat /etc/debian_version) container=$APPTAINER_CONTAINER"'


with parsl.load(config):
    futures = [in_container(n, stdout=os.path.join(out, f"app{n}.out"), stderr=os.path.join(out, f"app{n}.err"))
               for n in (1, 2)]
    codes = [f.result() for f in futures]
print("exit statuses:", codes)
