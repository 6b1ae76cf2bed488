// The reference siftool, built from Debian's copy of the Go SIF library
// (golang-github-sylabs-sif-dev), used by the tests as an independent reader
// of the files Vessel writes.
package main

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/sylabs/sif/v2/pkg/siftool"
)

func main() {
	root := &cobra.Command{Use: "siftool", Short: "reference SIF tool (test oracle)"}
	if err := siftool.AddCommands(root); err != nil {
		os.Exit(2)
	}
	if root.Execute() != nil {
		os.Exit(1)
	}
}
