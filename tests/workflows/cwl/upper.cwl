cwlVersion: v1.2
class: CommandLineTool
doc: |
  Upper-cases a file in a container that cwltool pulls itself (DockerRequirement),
  prints an EnvVarRequirement variable and the network interfaces it sees (no
  NetworkAccess: cwltool asks for `--net --network none`, so only lo), and exits
  3, which successCodes accepts.
requirements:
  DockerRequirement:
    # REGISTRY: the test registry (host:port), filled in by run.sh.
    dockerPull: REGISTRY/busybox:latest
  EnvVarRequirement:
    envDef:
      GREETING: hello-from-cwl
baseCommand: [sh, -c]
arguments:
  - >-
    tr a-z A-Z < "$0";
    echo "greeting=$GREETING";
    awk -F: 'NR > 2 { gsub(/ /, "", $1); print "interface=" $1 }' /proc/net/dev;
    exit 3
  - $(inputs.infile.path)
inputs:
  infile: File
stdout: upper.txt
successCodes: [3]
outputs:
  upper: stdout
