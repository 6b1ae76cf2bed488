"""spython (Singularity Python) driving Vessel as `singularity`.

    python3 spython_check.py CASE LOCAL.sif REGISTRY

Run by tests/workflows/run.sh in a scratch directory, as an unprivileged
user. CASE is one of execute, pull, inspect, build (and run), instance
(start, exec instance://, list, stop); each checks what spython got back
(its parsed output), not only that a command ran.
"""
import os
import sys

from spython.logger import bot
from spython.main import Client


def check(cond, what):
    if not cond:
        sys.exit(f"spython {CASE}: {what}")


def pull():
    # Client.pull runs `singularity pull --name DIR/NAME SOURCE`.
    image = Client.pull(f"docker://{REGISTRY}/busybox:latest", name="pulled.sif", pull_folder=os.getcwd())
    print("pulled:", image)
    check(image == os.path.join(os.getcwd(), "pulled.sif") and os.path.isfile(image), f"no pulled.sif: {image!r}")
    return image


def execute():
    out = Client.execute(SIF, ["sh", "-c", 'echo "exec-ok $(id -un) $(cat /probe/bound.txt)"'],
                         bind=[f"{os.getcwd()}:/probe"], return_result=True)
    print("execute:", out)
    check(out["return_code"] == 0, f"exit status {out['return_code']}")
    check(out["message"] == f"exec-ok {os.environ['USER']} bound-by-spython\n", f"output {out['message']!r}")
    # A failing command: spython hands back its exit status.
    out = Client.execute(SIF, ["sh", "-c", "exit 7"], return_result=True)
    print("execute (exit 7):", out)
    check(out["return_code"] == 7, f"exit status {out['return_code']}, expected 7")


def inspect():
    image = pull()
    meta = Client.inspect(image)
    print("inspect:", meta)
    attrs = meta.get("attributes", {})
    labels = attrs.get("labels", {})
    check(labels.get("org.vessel.ci.image") == "busybox", f"labels {labels!r}")
    check('FOO="${FOO:-"bar"}"' in "".join(attrs.get("environment", {}).values()),
          f"environment {attrs.get('environment')!r}")


def build():
    image = pull()
    with open("small.def", "w") as f:
        f.write(f"""Bootstrap: localimage
From: {image}

%post
    echo built-by-spython > /built.txt

%labels
    org.vessel.ci.tool spython
""")
    # sudo=False: unprivileged, as fake root with the user's subordinate ids.
    built = Client.build(recipe="small.def", image="built.sif", sudo=False)
    print("build:", built)
    check(built == "built.sif" and os.path.isfile(built), f"no built.sif: {built!r}")
    out = Client.execute(built, ["cat", "/built.txt"])
    print("built image says:", out)
    check(out == "built-by-spython\n", f"/built.txt: {out!r}")
    labels = Client.inspect(built)["attributes"]["labels"]
    check(labels.get("org.vessel.ci.tool") == "spython", f"labels {labels!r}")
    # No %runscript: the base's OCI runscript (CMD sh, replaced by the
    # arguments) is kept, as Apptainer keeps it.
    out = Client.run(built, args=["echo", "run-ok"])
    print("built image runs:", out)
    check(out.strip() == "run-ok", f"run: {out!r}")


def instance():
    # Client.instance runs `singularity instance start SIF NAME`; spython
    # logs a failure and returns an Instance anyway, so errors are caught.
    errors = []
    real_error = bot.error
    bot.error = lambda msg: (errors.append(msg), real_error(msg))
    try:
        inst = Client.instance(SIF, name="wfcheck")
    finally:
        bot.error = real_error
    print("instance start:", inst, inst.cmd, errors)
    check(not errors, f"instance start failed: {errors!r}")
    try:
        # `singularity exec instance://wfcheck …`
        out = Client.execute(inst, ["cat", "/etc/passwd"])
        check("root:x:0:0" in out, f"exec in the instance: {out!r}")
        # `singularity instance list --json`, parsed by spython.
        listed = [i.name for i in Client.instances(quiet=True)]
        print("instances:", listed)
        check("wfcheck" in listed, f"not listed: {listed!r}")
    finally:
        inst.stop()
    left = [i.name for i in Client.instances(quiet=True) or []]
    print("after stop:", left)
    check("wfcheck" not in left, f"still listed after stop: {left!r}")


CASE, SIF, REGISTRY = sys.argv[1:4]
with open("bound.txt", "w") as f:
    f.write("bound-by-spython")
print("client:", Client.version())
globals()[CASE]()
print(f"spython {CASE}: ok")
