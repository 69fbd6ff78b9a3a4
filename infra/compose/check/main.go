// Command check validates a Compose file the way `docker compose config` does, for machines
// that have no Docker Compose plugin: it loads the file with compose-go (the library Docker
// Compose itself uses), which checks it against the Compose specification's schema,
// interpolates variables (failing on required ones that are unset), resolves anchors, merges
// and extends, and prints the resolved project as YAML. Exit status 1 on an invalid file.
//
//	go -C infra/compose/check run . ../compose.yaml
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: check <compose file>...")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions(os.Args[1:], cli.WithOsEnv, cli.WithName("rt-backbone"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := project.MarshalYAML()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}
