# A ReFrame run-only test on the Apptainer container platform: ReFrame writes
# `apptainer exec -B"STAGEDIR:/rfm_workdir" --pwd /rfm_workdir IMAGE CMD` into
# the job script. The image comes from WF_IMAGE.
import os

import reframe as rfm
import reframe.utility.sanity as sn


@rfm.simple_test
class VesselApptainerCheck(rfm.RunOnlyRegressionTest):
    valid_systems = ["*"]
    valid_prog_environs = ["*"]
    container_platform = "Apptainer"

    @run_before("run")
    def setup_container(self):
        self.container_platform.image = os.environ["WF_IMAGE"]
        # Runs in the stage directory, bound at /rfm_workdir.
        self.container_platform.command = (
            "bash -c 'echo \"pwd=$PWD\"; echo \"debian=$(cat /etc/debian_version)\"; "
            "echo written-in-container > staged.txt'"
        )

    @sanity_function
    def validate(self):
        return sn.all([
            sn.assert_found(r"^pwd=/rfm_workdir$", self.stdout),
            sn.assert_found(r"^debian=\d+\.\d+$", self.stdout),
            sn.assert_found(r"^written-in-container$", os.path.join(self.stagedir, "staged.txt")),
        ])
