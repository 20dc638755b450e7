// Command seal-ttt serves SEAL's test-time-training cycle and the tools
// around it: serve, ttt, finetune, generate, tokenize, demo, doctor, bench.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
)

// command is one subcommand: its one-line summary, the paragraph its -h
// prints above the flags, and its entry point, which receives the arguments
// after the subcommand's name.
type command struct {
	summary, help string
	run           func(args []string) error
}

// flagSet returns the flag set of command name, whose -h prints the usage
// line, the command's help paragraph and its flags.
func flagSet(name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: seal-ttt %s %s\n\n%s\n\nflags:\n", name, usageLine, commands[name].help)
		fs.PrintDefaults()
	}
	return fs
}

// commands lists every subcommand; each lives in a file of its own name.
var commands = map[string]command{}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	if os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(0)
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "seal-ttt: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := c.run(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0) // -h printed the usage, as asked
		}
		fmt.Fprintf(os.Stderr, "seal-ttt %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: seal-ttt <command> [flags]\n\nseal-ttt runs SEAL's test-time-training server: for each request it answers\nthe questions, fine-tunes a LoRA adapter on the request's sequences, answers\nagain and replies with both sets of answers graded. `seal-ttt <command> -h`\ndescribes each command.\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
}
