// Command jobctl is the operator CLI of jobd. See package jobctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/jobd/jobd/jobctl"
)

// version is set by the build: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	jobctl.Version = version
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := jobctl.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
