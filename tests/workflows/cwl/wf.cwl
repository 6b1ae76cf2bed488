cwlVersion: v1.2
class: Workflow
doc: upper.cwl, then count.cwl on its output.
inputs:
  infile: File
outputs:
  upper_file:
    type: File
    outputSource: upper/upper
  count_file:
    type: File
    outputSource: count/count
steps:
  upper:
    run: upper.cwl
    in: {infile: infile}
    out: [upper]
  count:
    run: count.cwl
    in: {infile: upper/upper}
    out: [count]
