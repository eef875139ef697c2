// Package app builds the eck-metrics-guard command line: one subcommand per front door.
package app

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes, as diff(1) has them: 0 nothing to change, 1 changes, 2 trouble.
const (
	exitOK      = 0
	exitChanges = 1
	exitError   = 2
	// exitUnsecured: diff found an operator it opted in that stays without secured metrics
	// (unsupported, or unknown to the guard); audit found an operator not secured.
	exitUnsecured = 3
)

// exitError carries a chosen exit code out of a command.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

// Version is set at build time with -ldflags "-X .../app.Version=v1.2.3".
var Version = "dev"

// Main runs the command line and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var coded *exitCodeError
	if errors.As(err, &coded) {
		if coded.err != nil {
			fmt.Fprintln(stderr, "error:", coded.err)
		}
		return coded.code
	}
	fmt.Fprintln(stderr, "error:", err)
	return exitError
}

func newRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "eck-metrics-guard",
		Short:         "Serve the ECK operator's metrics over TLS with token authentication, and keep it so",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newInjectCommand(),
		newDiffCommand(),
		newAuditCommand(),
		newKRMCommand(),
		newVersionCommand(),
		newServerCommand(),
	)
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), Version)
		},
	}
}
