cwlVersion: v1.2
class: CommandLineTool
doc: Counts the lines of a file (on stdin) in the pulled busybox image.
requirements:
  DockerRequirement:
    # REGISTRY: the test registry (host:port), filled in by run.sh.
    dockerPull: REGISTRY/busybox:latest
baseCommand: [wc, -l]
inputs:
  infile: File
stdin: $(inputs.infile.path)
stdout: count.txt
outputs:
  count: stdout
