# ReFrame configuration for tests/workflows/run.sh: this machine, one
# partition with the local scheduler whose containers run with Apptainer
# (Vessel installed as `apptainer`). The log goes to the run's prefix.
import os

site_configuration = {
    "systems": [
        {
            "name": "vessel-ci",
            "descr": "this machine, Vessel as apptainer",
            "hostnames": [".*"],
            "partitions": [
                {
                    "name": "local",
                    "scheduler": "local",
                    "launcher": "local",
                    "environs": ["plain"],
                    "container_platforms": [{"type": "Apptainer"}],
                }
            ],
        }
    ],
    "environments": [{"name": "plain"}],
    "logging": [
        {
            "handlers": [
                {
                    "type": "file",
                    "name": os.path.join(os.environ["WF_RFM_PREFIX"], "reframe.log"),
                    "level": "debug",
                    "format": "[%(asctime)s] %(levelname)s: %(message)s",
                    "append": False,
                }
            ],
        }
    ],
}
