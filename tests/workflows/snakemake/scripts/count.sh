#!/usr/bin/env bash
# A Snakemake Bash script: inputs and outputs arrive in the associative
# arrays snakemake_input and snakemake_output.
set -euo pipefail
printf 'lines=%s bash=%s\n' "$(wc -l < "${snakemake_input[0]}")" "${BASH_VERSINFO[0]}" > "${snakemake_output[0]}"
