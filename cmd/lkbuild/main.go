// Command lkbuild builds LinuxKit kernel images without a daemon, without root
// and without network access inside the build.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/sandbox"
)

// version is set at link time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// The sandbox re-executes this binary as its init; catch that first.
	sandbox.MaybeInit(os.Args)
	builder.MaybeRunStep(os.Args)
	limitHeap(os.Getenv, runtime.GOMAXPROCS(0))
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// heapLimit is the soft limit on the memory of lkbuild's own Go runtime
// for cpus usable CPUs. Its big consumer is the kernel source's parallel
// xz decoding: per worker (one per CPU) a 24 MiB block and an 8 MiB
// dictionary live, one more block in flight, and a new dictionary per
// block as garbage. With Go's default (collect at twice the live heap) a
// cold build's lkbuild process peaked at 251 MB on 2 CPUs (the source
// fetch alone at 237 MB); with this limit (128 MiB on 2 CPUs) the fetch
// peaked at 139 MB at the same CPU time. The limit leaves room above the
// decoder's live set so the collector does not run without end.
func heapLimit(cpus int) int64 {
	return 64<<20 + int64(cpus)*32<<20
}

// limitHeap sets heapLimit unless the user set GOMEMLIMIT, which the Go
// runtime has already applied.
func limitHeap(getenv func(string) string, cpus int) bool {
	if getenv("GOMEMLIMIT") != "" {
		return false
	}
	debug.SetMemoryLimit(heapLimit(cpus))
	return true
}

// run executes the CLI and returns the process exit code. It never calls
// os.Exit itself so that tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	app := newApp(stdout, stderr)
	if err := app.RunContext(ctx, args); err != nil {
		if ctx.Err() != nil {
			// Interrupted (Ctrl-C, SIGTERM): the command has cleaned up.
			fmt.Fprintln(stderr, "lkbuild: interrupted:", err)
			return exitInterrupted
		}
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(stderr, "lkbuild:", msg)
			}
			return ec.ExitCode()
		}
		fmt.Fprintln(stderr, "lkbuild:", err)
		if oci.IsRegistryFault(err) {
			// For a CI engine: worth a retry, unlike a failed build.
			return exitRegistryFault
		}
		return exitFailure
	}
	return 0
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:    "lkbuild",
		Usage:   "build LinuxKit kernel images without a daemon, root or network",
		Version: version,
		Description: `lkbuild pulls a builder image straight from a registry, runs the kernel
build in a rootless, network-less sandbox and writes the kernel, modules and
headers as a reproducible OCI image, to a local OCI layout or a registry.

Without a command, lkbuild builds: lkbuild --series 6.6.x --arch x86_64 is
lkbuild build --series 6.6.x --arch x86_64 (see lkbuild build --help).`,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		// --version names the kernel version to build; lkbuild's own
		// version is the version command.
		HideVersion:     true,
		HideHelpCommand: true,
		// run decides how to report errors and exit; urfave/cli would call
		// os.Exit itself.
		ExitErrHandler: func(*cli.Context, error) {},
		Flags: append([]cli.Flag{
			&cli.StringFlag{
				Name:    "cache-dir",
				Usage:   "where pulled blobs, rootfs trees, sources and build logs are kept",
				EnvVars: []string{"LKBUILD_CACHE_DIR"},
				Value:   defaultCacheDir(),
			},
			&cli.BoolFlag{
				Name:    "offline",
				Usage:   "use no network at all: sources, microcode and images come from the cache (lkbuild fetch fills it) or local mirrors, and what is missing is an error naming it",
				EnvVars: []string{"LKBUILD_OFFLINE"},
			},
		}, buildFlags()...),
		// lkbuild --series X --arch Y is lkbuild build --series X --arch Y.
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 && c.String("series") == "" && c.String("version") == "" {
				return cli.ShowAppHelp(c)
			}
			if err := needSeriesOrVersion(c); err != nil {
				return err
			}
			return buildAction(c)
		},
		Commands: withRootFlags([]*cli.Command{
			buildCommand(), fetchCommand(), pushCommand(), versionCommand(), listCommand(), showTagCommand(), tagsCommand(), runCommand(), doctorCommand(), builderImageCommand(), cacheCommand(), verifyCommand(), sbomCommand(), kconfigCommand(), matrixCommand(), updateYamlsCommand(), bumpCommand(), patchesCommand(),
		}),
		// A repeatable flag's value is one value: --env LDFLAGS=-Wl,-z,relro
		// and --run 'echo "one,two"' must not be split at the commas.
		DisableSliceFlagSeparator: true,
	}
}

// defaultCacheDir is $XDG_CACHE_HOME/lkbuild, falling back to ~/.cache/lkbuild.
func defaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return d + "/lkbuild"
	}
	return ".lkbuild-cache"
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print lkbuild's version",
		Action: func(c *cli.Context) error {
			_, err := fmt.Fprintln(c.App.Writer, "lkbuild", c.App.Version)
			return err
		},
	}
}
